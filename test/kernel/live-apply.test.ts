/**
 * `bpfctl diff` and `bpfctl apply` against a running chain, through the CLI (in-process) and the
 * supervisor's control socket: an unchanged file is a no-op; route, scale and code changes are
 * applied live; a function is added and removed; a pool change is refused with its reason and
 * changes nothing. A request already under way finishes on the route it started on. A slot whose
 * process cannot start again is retried while the rest of the chain serves, and comes back.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readManifest } from '../../src/deploy/manifest.ts';
import { type Chain, startChain } from '../../src/runtime/supervisor/index.ts';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { runCli as cli } from '../helpers/cli.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const ID = `bpfctl-test-${process.pid}-apply`;
const NAME = 'live-apply';
const ENV = {
  BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`,
  BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`,
  BPFCTL_RUN_DIR: `/tmp/${ID}-run`,
};
let saved: Record<string, string | undefined> = {};
// Inside the checkout: the policy imports 'bpfctl', which resolves from here.
const dir = mkdtempSync(join(repo, `.test-${process.pid}-apply-`));
const policy = join(dir, 'policy.ts');
const BROKEN = join(dir, 'reverse-broken');
let chain: Chain;
let before: Snapshot;
const logs: string[] = [];

const SLOW = `import type { Request } from 'bpfctl/runtime';
// Holds each request a while, so a route can change while one is under way.
export default async function slow(req: Request): Promise<number> {
  await new Promise((r) => setTimeout(r, 400));
  return req.body.length;
}
`;

function writePolicy(edit: (text: string) => string = (t) => t): void {
  const base = readFileSync(join(repo, 'examples/hello-chain/policy.ts'), 'utf8')
    .replace("name: 'hello-chain'", `name: '${NAME}'`)
    .replace("stamp: { instances: 1, handler: './functions/stamp.ts', maxInFlight: 64 },", "stamp: { instances: 1, handler: './functions/stamp.ts', maxInFlight: 64 },\n    slow: { instances: 1, handler: './functions/slow.ts' },")
    .replace("'/shout': ['upper', 'stamp'],", "'/shout': ['upper', 'stamp'],\n    '/slow': ['slow', 'stamp'],");
  writeFileSync(policy, edit(base));
}

function post(path: string, body = 'hello world'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${chain.url}${path.slice(1)}`, { method: 'POST', agent: false, headers: { 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.before(async () => {
  before = snapshot();
  saved = Object.fromEntries(Object.keys(ENV).map((k) => [k, process.env[k]]));
  Object.assign(process.env, ENV);
  cpSync(join(repo, 'examples/hello-chain'), dir, { recursive: true });
  writeFileSync(join(dir, 'functions/slow.ts'), SLOW);
  // Instances run the code built when the chain started, so renaming the source would not stop a
  // restart: this reverse refuses to start while the marker file exists.
  const reverse = readFileSync(join(dir, 'functions/reverse.ts'), 'utf8');
  writeFileSync(join(dir, 'functions/reverse.ts'), `import { existsSync } from 'node:fs';\nif (existsSync(${JSON.stringify(BROKEN)})) throw new Error('cannot start: marker present');\n${reverse}`);
  writePolicy();
  chain = await startChain(policy, { root: ENV.BPFCTL_BPFFS, log: (l) => logs.push(l) });
});

test.after(async () => {
  await chain?.stop();
  rmSync(dir, { recursive: true, force: true });
  // After a failed run too: the roots go if they are empty (the last test checked what was in them).
  removeOwnDirs([ENV.BPFCTL_BPFFS, ENV.BPFCTL_CGROUP_PARENT, ENV.BPFCTL_RUN_DIR]);
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test('diff of the unchanged file: no changes; apply of it is a no-op', async () => {
  const d = await cli('diff', policy, '--json');
  assert.is(d.code, 0, d.stderr);
  assert.equal(JSON.parse(d.stdout).changes, []);
  assert.match((await cli('diff', policy)).stdout, /no changes/);
  const pids = chain.instances().map((s) => s.pid);
  const a = await cli('apply', policy, '--json');
  assert.is(a.code, 0, a.stderr);
  assert.equal(JSON.parse(a.stdout).diff.changes, []);
  assert.equal(chain.instances().map((s) => s.pid), pids, 'no process replaced');
});

test('a request under way finishes on the route version it started on', async () => {
  const under = post('/slow');
  await sleep(100);
  const r = await cli('route', 'set', NAME, '/slow', 'slow', 'upper');
  assert.is(r.code, 0, r.stderr);
  assert.is((await under).body, 'hello world [/slow]', 'the old version: slow -> stamp');
  assert.is((await post('/slow')).body, 'HELLO WORLD', 'new requests: slow -> upper');
  await cli('route', 'set', NAME, '/slow', 'slow', 'stamp');
});

test('apply: routes, scale, new code, an added and a removed function, all live and shown by diff first', async () => {
  writeFileSync(join(dir, 'functions/echo.ts'), "import type { Request } from 'bpfctl/runtime';\nexport default (req: Request) => `echo ${req.text()}`;\n");
  writeFileSync(join(dir, 'functions/stamp.ts'), readFileSync(join(dir, 'functions/stamp.ts'), 'utf8').replace('[${req.route}]', '<${req.route}>'));
  writePolicy((t) =>
    t
      .replace("upper: { instances: 2,", 'upper: { instances: 3,')
      .replace("    slow: { instances: 1, handler: './functions/slow.ts' },", "    echo: { instances: 1, handler: './functions/echo.ts' },")
      .replace("    '/slow': ['slow', 'stamp'],", "    '/echo': ['echo'],")
      .replace("'/shout': ['upper', 'stamp'],", "'/shout': ['stamp', 'upper'],"),
  );
  const d = JSON.parse((await cli('diff', policy, '--json')).stdout) as { live: boolean; changes: { kind: string; name: string }[] };
  assert.ok(d.live);
  assert.equal(
    d.changes.map((c) => `${c.kind} ${c.name}`).sort(),
    ['function-added echo', 'function-code-changed stamp', 'function-removed slow', 'function-scaled upper', 'route-added /echo', 'route-changed /shout', 'route-removed /slow'].sort(),
  );
  // requests keep flowing through the apply
  let stop = false;
  const statuses: number[] = [];
  const load = (async () => {
    while (!stop) statuses.push((await post('/hello')).status);
  })();
  const a = await cli('apply', policy);
  stop = true;
  await load;
  assert.is(a.code, 0, a.stderr);
  assert.ok(statuses.length > 10 && statuses.every((s) => s === 200), `requests during apply: ${[...new Set(statuses)]}`);
  assert.is((await post('/echo')).body, 'echo hello world');
  assert.is((await post('/shout')).body, 'HELLO WORLD </SHOUT>');
  assert.is((await post('/hello')).body, 'DLROW OLLEH </hello>');
  assert.is((await post('/slow')).status, 404);
  assert.is(chain.instances().filter((s) => s.name === 'upper' && s.state === 'ready').length, 3);
  assert.not.ok(chain.instances().some((s) => s.name === 'slow'));
  const m = readManifest(chain.pinDir);
  assert.equal(m.ir.functions.map((f) => `${f.name}x${f.instances}`), ['upperx3', 'reversex1', 'stampx1', 'echox1']);
  assert.match((await cli('diff', policy)).stdout, /no changes/);
});

test('an edit to a module a handler imports is a code change: diff shows it, apply serves the new code', async () => {
  mkdirSync(join(dir, 'functions/lib'), { recursive: true });
  writeFileSync(join(dir, 'functions/lib/prefix.ts'), "export const PREFIX = 'echo';\n");
  writeFileSync(join(dir, 'functions/echo.ts'), "import type { Request } from 'bpfctl/runtime';\nimport { PREFIX } from './lib/prefix.ts';\nexport default (req: Request) => `${PREFIX} ${req.text()}`;\n");
  assert.is((await cli('apply', policy)).code, 0);
  assert.is((await post('/echo')).body, 'echo hello world');
  // Only the imported file changes: the handler file is byte for byte the same.
  writeFileSync(join(dir, 'functions/lib/prefix.ts'), "export const PREFIX = 'ECHO';\n");
  const d = JSON.parse((await cli('diff', policy, '--json')).stdout) as { changes: { kind: string; name: string }[] };
  assert.equal(d.changes.map((c) => `${c.kind} ${c.name}`), ['function-code-changed echo']);
  const a = await cli('apply', policy);
  assert.is(a.code, 0, a.stderr);
  assert.is((await post('/echo')).body, 'ECHO hello world');
  assert.match((await cli('diff', policy)).stdout, /no changes/);
});

test('apply refuses a pool change with the reason and changes nothing', async () => {
  const before = readFileSync(policy, 'utf8');
  writePolicy((t) => t.replace('bufferSize: 4096', 'bufferSize: 8192'));
  const a = await cli('apply', policy);
  assert.is(a.code, 1);
  assert.match(a.stderr, /pool geometry/);
  assert.is((await post('/hello')).status, 200);
  writeFileSync(policy, before);
});

test('a slot whose process cannot start again is retried; the rest serves; it comes back', async () => {
  writeFileSync(BROKEN, '');
  const victim = chain.instances().find((s) => s.name === 'reverse' && s.state === 'ready')!;
  process.kill(victim.pid!, 'SIGKILL');
  await sleep(1500);
  const slot = chain.instances().find((s) => s.name === 'reverse')!;
  assert.ok(slot.restarts >= 1 && slot.state !== 'ready', `reverse: ${JSON.stringify(slot)}`);
  // the failure is reported on the slot, as `bpfctl status` shows it
  assert.match(slot.lastError ?? '', /died|cannot start/, JSON.stringify(slot));
  // and the instance's own line names the file the user wrote, not the bundle built from it
  assert.ok(
    logs.some((l) => l.includes(`cannot import handler ${join(dir, 'functions/reverse.ts')}: cannot start: marker present`)),
    logs.filter((l) => l.includes('cannot import')).join('\n') || 'no "cannot import" line',
  );
  assert.is((await post('/shout')).status, 200, 'routes without it serve');
  assert.is((await post('/hello')).status, 503, 'its route fails fast');
  rmSync(BROKEN);
  for (let i = 0; i < 100 && (await post('/hello')).status !== 200; i++) await sleep(100);
  assert.is((await post('/hello')).status, 200, 'back once it can start again');
  assert.ok(existsSync(chain.pinDir));
});

test('stop() leaves nothing behind', async () => {
  await chain.stop();
  // The three roots are this file's; the chain may leave them, empty, and nothing else.
  const roots = [ENV.BPFCTL_BPFFS, ENV.BPFCTL_CGROUP_PARENT, ENV.BPFCTL_RUN_DIR];
  assert.equal(await leaksSince(before, { ownDirs: roots }), []);
  removeOwnDirs(roots);
});

test.run();
