/**
 * Every bpfctl command run by an unprivileged user, through the compiled CLI (`node
 * bin/bpfctl.js`, as an installed package runs), against a chain that root runs: the hello-chain
 * example under `startChain`, whose pins (0700 bpffs directories), control socket (0600) and pool
 * file are root's. A user created by this test (no capabilities, no groups) gets:
 *
 * - `build`, `graph FILE`, `diff FILE` with nothing loaded, `xdp explain FILE`, `--help`,
 *   `--version`, `gen types` and its own pools: working, exit 0 (build with the user's own cache
 *   under ~/.cache/bpfctl);
 * - everything else: exactly one line on stderr saying what it needs, exit 77; never a stack
 *   trace, never "internal error", never "not loaded" or "not running" for what is in fact
 *   there but not the user's to see.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BpfProgram } from '../../loader/index.ts';
import { askSupervisor, type Chain, startChain } from '../../src/runtime/supervisor/index.ts';
import { BPFCTL_BIN as bin, ensureBuilt } from '../helpers/dist.ts';
import { type Snapshot, snapshot } from '../helpers/leaks.ts';
import { sh } from '../helpers/sh.ts';
import { objectFile, objectsDir } from '../objects/build.ts';
import { runLeaks } from './run-leaks.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const ID = `bpfctl-test-${process.pid}`;
const USER = `bpfctl-test-${process.pid}`;
const HOME = `/tmp/${ID}-home`;
const ENV = {
  BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`,
  BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`,
  BPFCTL_RUN_DIR: `/tmp/${ID}-run`,
};
const POOL = `test-${process.pid}-nonroot`;
const USER_POOL = `test-${process.pid}-mine`;
const NEEDS = 'needs root, or CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN';
const HELLO = join(repo, 'examples/hello-chain/policy.ts');

let saved: Record<string, string | undefined> = {};
let before: Snapshot;
let chain: Chain;
let uid = 0;
let gid = 0;
let progId = 0;
let mapId = 0;
let object = '';
const own = new Set<string>();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `bpfctl ...args` as the test user: no capabilities, no supplementary groups, its own HOME. */
function asUser(args: readonly string[], env: Record<string, string> = ENV): Run {
  const r = spawnSync(
    'setpriv',
    [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--inh-caps=-all', process.execPath, bin, ...args],
    // A login environment: nothing of root's (no BPFCTL_CACHE, no XDG_CACHE_HOME of the runner).
    { cwd: HOME, encoding: 'utf8', env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME, LANG: 'C.UTF-8', ...env }, timeout: 120_000 },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test.before(async () => {
  // The user runs the compiled CLI.
  ensureBuilt();
  before = snapshot();
  saved = Object.fromEntries(Object.keys(ENV).map((k) => [k, process.env[k]]));
  Object.assign(process.env, ENV);
  sh('useradd', ['-M', '-s', '/usr/sbin/nologin', USER]);
  uid = Number(sh('id', ['-u', USER]).trim());
  gid = Number(sh('id', ['-g', USER]).trim());
  mkdirSync(HOME, { mode: 0o700 });
  sh('chown', [`${uid}:${gid}`, HOME]);
  // An object file the user may read (the test's build directory is root's, 0700).
  object = join(HOME, 'xdp_stats_array.bpf.o');
  copyFileSync(objectFile('xdp_stats_array'), object);
  chmodSync(object, 0o644);
  chain = await startChain(HELLO, { poolName: POOL, timeoutMs: 2000 });
  const prog = BpfProgram.openPinned(join(chain.pinDir, 'progs/chain_msg'));
  progId = prog.id;
  prog.close();
  const map = BpfMap.openPinned(join(chain.pinDir, 'maps/routes'));
  mapId = map.id;
  map.close();
});

test.after(async () => {
  await chain?.stop();
  sh('userdel', [USER], { allowFail: true });
  rmSync(HOME, { recursive: true, force: true });
  rmSync(objectsDir, { recursive: true, force: true });
  rmSync(ENV.BPFCTL_RUN_DIR, { recursive: true, force: true });
  if (existsSync(ENV.BPFCTL_BPFFS)) rmdirSync(ENV.BPFCTL_BPFFS);
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test('the test user really is unprivileged, and root really has things to hide', () => {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--inh-caps=-all', 'grep', '^CapEff', '/proc/self/status'], { encoding: 'utf8' });
  assert.match(r.stdout, /^CapEff:\s+0+$/m);
  assert.is(statSync(ENV.BPFCTL_BPFFS).mode & 0o777, 0o700, 'pin root is root-only');
  assert.ok(existsSync(join(ENV.BPFCTL_RUN_DIR, 'hello-chain.sock')), 'the supervisor listens');
});

/** Commands that need privileges, as the user types them, against the running chain. */
const PRIVILEGED: string[][] = [
  ['status'],
  ['status', 'hello-chain'],
  ['top', 'hello-chain', '--count', '1'],
  ['route', 'ls', 'hello-chain'],
  ['route', 'set', 'hello-chain', '/x', 'upper'],
  ['route', 'del', 'hello-chain', '/shout'],
  ['diff', HELLO],
  ['apply', HELLO],
  ['graph', 'hello-chain'],
  ['load', HELLO],
  ['load', '@OBJECT', '--pin', `${ENV.BPFCTL_BPFFS}/mine`],
  ['unload', 'hello-chain'],
  ['unload', `${ENV.BPFCTL_BPFFS}/hello-chain`],
  ['run', HELLO],
  ['scale', 'hello-chain', 'upper', '3'],
  ['xdp', 'status'],
  ['xdp', 'status', 'hello-chain'],
  ['xdp', 'explain', 'hello-chain', 'ffffffffffff0200000000010806'],
  ['set', 'ls', 'hello-chain', 'blocked'],
  ['set', 'add', 'hello-chain', 'blocked', '10.0.0.0/8'],
  ['pool', 'stat', POOL],
  ['prog', 'ls'],
  ['prog', 'show', 'id', '@PROG'],
  ['prog', 'attach', 'id', '@PROG', 'xdp', 'lo'],
  ['prog', 'detach', 'hello-chain/chain_msg'],
  ['map', 'ls'],
  ['map', 'show', 'hello-chain/routes'],
  ['map', 'dump', 'hello-chain/routes'],
  ['map', 'dump', 'routes'],
  ['map', 'dump', 'id', '@MAP'],
  ['map', 'dump', 'pinned', `${ENV.BPFCTL_BPFFS}/hello-chain/maps/routes`],
  ['map', 'get', 'id', '@MAP', '0'],
  ['map', 'set', 'name', 'routes', '0', '0'],
  ['map', 'del', 'id', '@MAP', '0'],
  ['map', 'watch', 'id', '@MAP', '--count', '1'],
  ['link', 'ls'],
  ['link', 'detach', 'id', '1'],
  ['metrics', 'hello-chain', '--once'],
];

const fill = (args: string[]) => args.map((a) => a.replace('@PROG', String(progId)).replace('@MAP', String(mapId)).replace('@OBJECT', object));

for (const args of PRIVILEGED) {
  test(`unprivileged: bpfctl ${args.join(' ')} -> one line, exit 77`, () => {
    const r = asUser(fill(args));
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.is(r.code, 77, `exit code (stderr: ${r.stderr})`);
    assert.is(lines.length, 1, `one line on stderr: ${JSON.stringify(r.stderr)}`);
    assert.match(lines[0]!, /^bpfctl: /);
    assert.ok(lines[0]!.includes(NEEDS), lines[0]);
    assert.not.match(r.stderr, /\n\s+at |internal error|not loaded|not running|ENOENT|--verbose/);
    assert.is(r.stdout, '', 'nothing on stdout');
  });
}

test('the one line says what was refused: the pin root, the policy, the socket, the command', () => {
  assert.match(asUser(['status']).stderr, /^bpfctl: cannot list loaded policies in \/sys\/fs\/bpf\/bpfctl-test-\d+: permission denied: needs root/);
  assert.match(asUser(['route', 'ls', 'hello-chain']).stderr, new RegExp(`^bpfctl: cannot read ${ENV.BPFCTL_BPFFS}/hello-chain: permission denied`));
  assert.match(asUser(['route', 'set', 'hello-chain', '/x', 'upper']).stderr, /^bpfctl: route set hello-chain: needs root, .*\(it writes the policy's pinned routes map/);
  assert.match(asUser(['run', HELLO]).stderr, /^bpfctl: run .*policy\.ts: needs root, .*pid file/);
  assert.match(asUser(['map', 'dump', 'id', String(mapId)]).stderr, new RegExp(`^bpfctl: open map id ${mapId}: permission denied`));
});

test('with --json the refusal is one JSON object on stderr, exit 77', () => {
  const r = asUser(['status', 'hello-chain', '--json']);
  assert.is(r.code, 77);
  const e = JSON.parse(r.stderr) as { code: string; message: string; path: string };
  assert.is(e.code, 'E_PERM');
  assert.is(e.path, `${ENV.BPFCTL_BPFFS}/hello-chain`);
});

test('nothing the refused commands could have made exists: no pool, pins, pid file or cgroup of the user', () => {
  // `run` and `load` stopped before their first step: the only pool is root's, no pin is the user's.
  const pools = readdirSync('/dev/shm').filter((f) => f.includes(`test-${process.pid}`));
  assert.equal(pools, [`bpfctl-pool-${POOL}`]);
  for (const f of pools) assert.is(statSync(join('/dev/shm', f)).uid, 0);
  assert.not.ok(existsSync(join(ENV.BPFCTL_BPFFS, 'mine')));
  assert.equal(readdirSync(ENV.BPFCTL_RUN_DIR).sort(), ['hello-chain.pid', 'hello-chain.sock']);
});

test('--help, --version, version work without root', () => {
  const help = asUser(['--help']);
  assert.is(help.code, 0, help.stderr);
  assert.match(help.stdout, /Exit codes: 0 ok, 1 failure, 2 usage error, 77 insufficient privileges/);
  const sub = asUser(['map', 'dump', '--help']);
  assert.is(sub.code, 0, sub.stderr);
  assert.match(sub.stdout, /id N, pinned PATH, name NAME, POLICY\/MAP/);
  const v = asUser(['--version']);
  assert.is(v.code, 0);
  assert.match(v.stdout, /^bpfctl \d+\.\d+\.\d+\n$/);
  assert.equal(asUser(['-V']).stdout, v.stdout);
  const j = asUser(['version', '--json']);
  assert.equal(Object.keys(JSON.parse(j.stdout)).sort(), ['node', 'version']);
});

test("build works without root, with the user's own cache (~/.cache/bpfctl)", () => {
  const r = asUser(['build', HELLO]);
  assert.is(r.code, 0, r.stderr);
  const out = join(HOME, 'build/hello-chain');
  for (const f of ['ir.json', 'chain.bpf.c', 'chain.bpf.o']) assert.ok(existsSync(join(out, f)), f);
  assert.is(statSync(join(out, 'chain.bpf.o')).uid, uid);
  const cache = join(HOME, '.cache/bpfctl');
  const objs = readdirSync(join(cache, 'bpf')).filter((f) => f.endsWith('.o'));
  assert.ok(objs.length > 0, 'compiled objects are cached in the user cache');
  for (const f of objs) assert.is(statSync(join(cache, 'bpf', f)).uid, uid);
  // Again: from the user's cache this time.
  const again = asUser(['build', HELLO, '--json']);
  assert.is(again.code, 0, again.stderr);
  const files = (JSON.parse(again.stdout) as { files: { kind: string; cached?: boolean }[] }).files.filter((f) => f.kind === 'obj');
  assert.ok(files.length > 0 && files.every((f) => f.cached === true), JSON.stringify(files));
});

test('graph FILE and build --emit ir work without root', () => {
  const g = asUser(['graph', HELLO]);
  assert.is(g.code, 0, g.stderr);
  assert.match(g.stdout, /^\/\/ generated by bpfctl from policy hello-chain\ndigraph "hello-chain"/);
  const m = asUser(['graph', HELLO, '-f', 'mermaid']);
  assert.match(m.stdout, /flowchart LR/);
  const ir = asUser(['build', HELLO, '--emit', 'ir']);
  assert.is((JSON.parse(ir.stdout) as { name: string }).name, 'hello-chain');
});

test('with nothing loaded, diff FILE and status say so without root (exit 0)', () => {
  // A pin root that does not exist: nothing is loaded, which any user can tell.
  const empty = { ...ENV, BPFCTL_BPFFS: `/sys/fs/bpf/${ID}-none` };
  const d = asUser(['diff', HELLO], empty);
  assert.is(d.code, 0, d.stderr);
  assert.match(d.stdout, /^policy hello-chain is not loaded: bpfctl apply .*policy\.ts would load it \(3 functions, 2 routes\)\n/);
  assert.match(d.stdout, /\n\+ fn\s+upper\s+2 instances/);
  const dj = JSON.parse(asUser(['diff', HELLO, '--json'], empty).stdout) as { loaded: boolean; changes: { kind: string; name: string }[] };
  assert.is(dj.loaded, false);
  assert.equal(dj.changes.filter((c) => c.kind === 'route-added').map((c) => c.name), ['/hello', '/shout']);
  const s = asUser(['status'], empty);
  assert.is(s.code, 0, s.stderr);
  assert.is(s.stdout, '(none)\n');
  const nl = asUser(['status', 'hello-chain'], empty);
  assert.is(nl.code, 1, 'truly not loaded is an ordinary failure');
  assert.match(nl.stderr, /^bpfctl: policy hello-chain is not loaded/);
});

test('xdp explain of a policy file works without root (its sets as written)', () => {
  const arp = `ffffffffffff0200000000010806${'00'.repeat(28)}`;
  const r = asUser(['xdp', 'explain', join(repo, 'examples/firewall/policy.ts'), arp]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /verdict +XDP_PASS/);
});

test('gen types and the user’s own pools work without root', () => {
  const gen = asUser(['gen', 'types', object, '-o', join(HOME, 'stats.ts')]);
  assert.is(gen.code, 0, gen.stderr);
  assert.ok(existsSync(join(HOME, 'stats.ts')));
  const c = asUser(['pool', 'create', USER_POOL, '--buffer-size', '256', '--buffers', '8', '--backing', 'shm', '--json']);
  assert.is(c.code, 0, c.stderr);
  assert.is(statSync(`/dev/shm/bpfctl-pool-${USER_POOL}`).uid, uid);
  const st = asUser(['pool', 'stat', USER_POOL, '--json']);
  assert.is((JSON.parse(st.stdout) as { bufferCount: number }).bufferCount, 8);
  assert.is(asUser(['pool', 'rm', USER_POOL]).code, 0);
  assert.not.ok(existsSync(`/dev/shm/bpfctl-pool-${USER_POOL}`));
});

test('root still reaches everything the user could not (the refusals were about privileges)', async () => {
  const r = spawnSync(process.execPath, [bin, 'route', 'ls', 'hello-chain', '--json'], { encoding: 'utf8', env: { ...process.env, ...ENV } });
  assert.is(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { route: string }[]).map((x) => x.route), ['/hello', '/shout']);
  const slots = (await askSupervisor('hello-chain', { op: 'instances' })) as unknown[];
  assert.is(slots.length, 5);
});

test('stopping leaves nothing behind', async () => {
  for (const k of ['prog', 'map', 'link'] as const) {
    const list = JSON.parse(sh('bpftool', ['-j', '-f', k, 'show'])) as { id: number; pinned?: string[] }[];
    for (const o of list) if (o.pinned?.some((p) => p.startsWith(`${ENV.BPFCTL_BPFFS}/`))) own.add(`${k}:${o.id}`);
  }
  await chain.stop();
  sh('userdel', [USER]);
  rmSync(HOME, { recursive: true, force: true });
  rmSync(objectsDir, { recursive: true, force: true });
  assert.equal(await runLeaks(before, own, [ENV.BPFCTL_BPFFS, ENV.BPFCTL_RUN_DIR, ENV.BPFCTL_CGROUP_PARENT]), []);
});

test.run();
