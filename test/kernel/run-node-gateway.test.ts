/**
 * A chain behind the Node gateway (`gateway: { engine: 'node', processes: 2 }`), now that the
 * native one is the default: the supervisor starts both gateway processes as cluster workers,
 * requests are answered by the chain, a live route change is followed, a killed gateway process
 * is restarted on the same port, and stopping leaves nothing. (The Node gateway's HTTP semantics
 * are runtime-gateway.test.ts's, run against both engines.)
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Chain, startChain } from '../../src/runtime/supervisor/index.ts';
import { runCli as cli } from '../helpers/cli.ts';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const ID = `bpfctl-test-${process.pid}-nodegw`;
const NAME = 'node-gw';
const ENV = {
  BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`,
  BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`,
  BPFCTL_RUN_DIR: `/tmp/${ID}-run`,
};
let saved: Record<string, string | undefined> = {};
// Inside the checkout: the policy imports 'bpfctl', which resolves from here.
const dir = mkdtempSync(join(repo, `.test-${process.pid}-nodegw-`));
let chain: Chain;
let before: Snapshot;

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
  const text = readFileSync(join(dir, 'policy.ts'), 'utf8')
    .replace("name: 'hello-chain'", `name: '${NAME}'`)
    .replace('routes: {', "gateway: { engine: 'node', processes: 2 },\n  routes: {");
  writeFileSync(join(dir, 'policy.ts'), text);
  chain = await startChain(join(dir, 'policy.ts'), { root: ENV.BPFCTL_BPFFS, log: () => {} });
});

test.after(async () => {
  await chain?.stop();
  rmSync(dir, { recursive: true, force: true });
  removeOwnDirs([ENV.BPFCTL_BPFFS, ENV.BPFCTL_CGROUP_PARENT, ENV.BPFCTL_RUN_DIR]);
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test('two Node gateway processes answer through the chain', async () => {
  const gws = chain.instances().filter((s) => s.kind === 'gateway');
  assert.is(gws.length, 2);
  assert.ok(gws.every((g) => g.state === 'ready' && g.pid !== null), JSON.stringify(gws));
  const rs = await Promise.all(Array.from({ length: 64 }, () => post('/hello')));
  assert.equal([...new Set(rs.map((r) => `${r.status} ${r.body}`))], ['200 DLROW OLLEH [/hello]']);
});

test('a live route change is followed by the Node gateways', async () => {
  const r = await cli('route', 'set', NAME, '/shout', 'stamp', 'upper', '--json');
  assert.is(r.code, 0, r.stderr);
  await sleep(100);
  const answers = await Promise.all(Array.from({ length: 16 }, () => post('/shout')));
  assert.equal([...new Set(answers.map((a) => `${a.status} ${a.body}`))], ['200 HELLO WORLD [/SHOUT]']);
});

test('a killed gateway process is restarted and serves on the same URL', async () => {
  const victim = chain.instances().find((s) => s.kind === 'gateway' && s.state === 'ready')!;
  process.kill(victim.pid!, 'SIGKILL');
  let back = false;
  for (let i = 0; i < 100 && !back; i++) {
    await sleep(100);
    const g = chain.instances().filter((s) => s.kind === 'gateway');
    back = g.length === 2 && g.every((s) => s.state === 'ready') && g.some((s) => s.restarts >= 1);
  }
  assert.ok(back, JSON.stringify(chain.instances().filter((s) => s.kind === 'gateway')));
  const rs = await Promise.all(Array.from({ length: 32 }, () => post('/hello')));
  assert.ok(rs.every((r) => r.status === 200), rs.map((r) => r.status).join(','));
});

test('stop() leaves nothing behind', async () => {
  await chain.stop();
  const roots = [ENV.BPFCTL_BPFFS, ENV.BPFCTL_CGROUP_PARENT, ENV.BPFCTL_RUN_DIR];
  assert.equal(await leaksSince(before, { ownDirs: roots }), []);
  removeOwnDirs(roots);
});

test.run();
