/**
 * bpfctl as a bpftool user expects it, against a real running policy: `bpfctl run` (the compiled
 * CLI, in a network namespace of the test's) of a chain with an XDP section on a veth, with real
 * HTTP requests and real packets.
 *
 * - objects named by `id N`, `pinned PATH`, `name NAME`, `POLICY/NAME` and a bare name (when one
 *   loaded policy has it), for map, prog and link; several candidates are an error listing them;
 * - `-j` (one compact document), `-p` (indented), `--version`;
 * - tables fit 80 columns (wider only on a terminal that is wider), with a rule under the header;
 * - `top` labels what it counts (requests per route, messages per hop) and counts it right;
 * - `graph NAME` draws what runs from the pins: routes changed live (and versions draining), live
 *   instances, the XDP section's rules with their packet counters and its sets' live sizes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfLink, BpfMap, BpfProgram } from '../../loader/index.ts';
import { main } from '../../src/cli/main.ts';
import { cliJson as json, runCli as cli } from '../helpers/cli.ts';
import { BPFCTL_BIN, ensureBuilt } from '../helpers/dist.ts';
import { type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair, type NetnsPair } from '../helpers/netns.ts';
import { runLeaks } from './run-leaks.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const ID = `bpfctl-test-${process.pid}-habits`;
const ENV = {
  BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`,
  BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`,
  BPFCTL_RUN_DIR: `/tmp/${ID}-run`,
};
const DIR = `/tmp/${ID}`;
const POOL = `test-${process.pid}-habits`;
/** A set name no other test's map has: `name set_<it>` is unique on the machine. */
const SET = `h${process.pid}`;
const NAME = 'habits';
const pinDir = join(ENV.BPFCTL_BPFFS, NAME);

let saved: Record<string, string | undefined> = {};
let before: Snapshot;
let net: NetnsPair;
let run: ChildProcess | undefined;
let runExited: Promise<number | null> = Promise.resolve(null);
let url = '';
const runErr: string[] = [];
const own = new Set<string>();

function policyText(iface: string): string {
  return `import { definePolicy, drop, pass, set, xdpSection } from 'bpfctl';
export default definePolicy({
  name: '${NAME}',
  functions: {
    upper: { instances: 2, handler: './functions/upper.ts' },
    stamp: { instances: 1, handler: './functions/stamp.ts' },
  },
  routes: { '/hello': ['upper', 'stamp'], '/shout': ['stamp'] },
  pool: { bufferSize: 2048, bufferCount: 64 },
  xdp: [
    xdpSection({
      interface: '${iface}',
      default: 'pass',
      sets: { '${SET}': { type: 'ipv4-prefix', elements: ['192.0.2.0/24'] }, ports: { type: 'port', elements: [7001] } },
      rules: [drop({ src: set('${SET}') }, { name: 'blocked' }), pass({ proto: 'udp', dport: set('ports') }, { name: 'open' })],
    }),
  ],
});
`;
}

const OTHER = `import { definePolicy } from 'bpfctl';
export default definePolicy({
  name: 'other',
  functions: { stamp: { instances: 1, handler: './functions/stamp.ts' } },
  routes: { '/o': ['stamp'] },
  pool: { bufferSize: 2048, bufferCount: 16 },
});
`;

const SENDER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])): s.sendto(b'x' * 32, (sys.argv[1], int(sys.argv[2])))
`;
const POSTER = `
import sys, urllib.request
for i in range(int(sys.argv[2])):
    with urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b'hello %d' % i, method='POST'), timeout=5) as r:
        assert r.status == 200, r.status
`;
const send = (port: number, n: number) => net.exec(net.nsA, 'python3', ['-c', SENDER, net.ipB, String(port), String(n)]);
/** N POSTs to a route of the running chain (its gateway listens on 127.0.0.1 inside nsB). */
const post = (route: string, n: number) => net.exec(net.nsB, 'python3', ['-c', POSTER, `${url}${route.slice(1)}`, String(n)]);

/** Runs the CLI in-process with stdout as a terminal of `columns` (or a pipe when `tty` is false). */
async function cliAt(columns: number, tty: boolean, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const stdout = { write: (s: string) => void out.push(s), isTTY: tty, columns };
  const code = await main(args, { stdout, stderr: { write: (s: string) => void err.push(s) } });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

const width = (line: string) => [...line].length;
const RULE = /^─+( {2}─+)*$/;

const idOf = (kind: 'prog' | 'map' | 'link', pin: string) => {
  const o = kind === 'prog' ? BpfProgram.openPinned(pin) : kind === 'map' ? BpfMap.openPinned(pin) : BpfLink.openPinned(pin);
  try {
    return o.id;
  } finally {
    o.close();
  }
};

test.before(async () => {
  ensureBuilt();
  before = snapshot();
  saved = Object.fromEntries(Object.keys(ENV).map((k) => [k, process.env[k]]));
  Object.assign(process.env, ENV);
  net = createNetnsPair('h');
  mkdirSync(join(DIR, 'functions'), { recursive: true });
  for (const f of ['upper.ts', 'stamp.ts']) cpSync(join(repo, 'examples/hello-chain/functions', f), join(DIR, 'functions', f));
  writeFileSync(join(DIR, 'policy.ts'), policyText(net.ifB));
  writeFileSync(join(DIR, 'other.ts'), OTHER);
  // `bpfctl run` as a user runs it, inside nsB where the policy's interface is (nsenter keeps
  // this mount namespace, so bpffs and the cgroup tree are the test's).
  const child = spawn('nsenter', [`--net=/run/netns/${net.nsB}`, process.execPath, BPFCTL_BIN, 'run', join(DIR, 'policy.ts'), '--pool', POOL, '--json'], {
    env: { ...process.env, ...ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  run = child;
  runExited = new Promise((r) => child.once('exit', (code) => r(code)));
  child.stderr.setEncoding('utf8').on('data', (t: string) => void runErr.push(t));
  const first = await new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => {
      text += t;
      if (text.includes('\n')) resolve(text.split('\n')[0]!);
    });
    void runExited.then((code) => reject(new Error(`bpfctl run exited ${code}: ${runErr.join('')}`)));
    setTimeout(() => reject(new Error(`bpfctl run did not start in 90 s: ${runErr.join('')}`)), 90_000);
  });
  url = (JSON.parse(first) as { url: string }).url;
});

test.after(async () => {
  if (run && run.exitCode === null) {
    run.kill('SIGTERM');
    await runExited;
  }
  if (existsSync(join(ENV.BPFCTL_BPFFS, 'other'))) await cli('unload', 'other');
  net?.destroy();
  rmSync(DIR, { recursive: true, force: true });
  rmSync(ENV.BPFCTL_RUN_DIR, { recursive: true, force: true });
  if (existsSync(ENV.BPFCTL_BPFFS)) rmdirSync(ENV.BPFCTL_BPFFS);
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test('the chain runs and answers; XDP counts packets on the veth', async () => {
  post('/hello', 5);
  send(7001, 7);
  const xdp = await json<{ rules: { name: string; packets: number }[] }[]>('xdp', 'status', NAME);
  assert.is(xdp[0]!.rules.find((r) => r.name === 'open')!.packets, 7);
});

test('map: id N, pinned PATH, POLICY/MAP, a bare name (one policy has it) and name NAME are the same map', async () => {
  const pin = join(pinDir, 'maps/routes');
  const id = idOf('map', pin);
  const byPath = await json('map', 'dump', pin);
  for (const ref of [['id', String(id)], [`id:${id}`], [String(id)], ['pinned', pin], [`${NAME}/routes`], [`${NAME}/maps/routes`], ['routes']]) {
    assert.equal(await json('map', 'dump', ...ref), byPath, ref.join(' '));
  }
  // Two words then a key: `map get id N KEY` (KEY 0x0 read as typed, not as a number).
  const slot = (byPath as { key: number; value: { len: number } }[]).find((r) => r.value.len > 0)!.key;
  assert.equal(await json('map', 'get', 'id', String(id), `0x${slot.toString(16)}`), await json('map', 'get', pin, String(slot)));
  // An XDP section's map by its file name under the policy, and by its (unique) kernel name.
  const setPin = join(pinDir, 'xdp', net.ifB, 'maps', `set_${SET}`);
  const setId = idOf('map', setPin);
  const shown = await json<{ id: number }[]>('map', 'show', 'name', `set_${SET}`);
  assert.equal(shown.map((m) => m.id), [setId]);
  assert.equal(await json('map', 'dump', `${NAME}/set_${SET}`), await json('map', 'dump', 'pinned', setPin));
  assert.is((await json<{ id: number }[]>('map', 'ls', 'id', String(id), `${NAME}/set_${SET}`)).length, 2, 'ls takes several references');
});

test('prog and link: id N, pinned PATH, POLICY/NAME, a path in the policy', async () => {
  const chainPin = join(pinDir, 'progs/chain_msg');
  const chainId = idOf('prog', chainPin);
  for (const ref of [['id', String(chainId)], ['pinned', chainPin], [`${NAME}/chain_msg`], ['chain_msg']]) {
    const shown = await json<{ id: number; pins: string[]; owner: string }[]>('prog', 'show', ...ref);
    assert.equal(shown.map((p) => p.id), [chainId], ref.join(' '));
    assert.is(shown[0]!.owner, `policy ${NAME}`);
  }
  const xdpId = idOf('prog', join(pinDir, 'xdp', net.ifB, 'prog'));
  assert.equal((await json<{ id: number }[]>('prog', 'show', `${NAME}/xdp/${net.ifB}/prog`)).map((p) => p.id), [xdpId]);
  const human = await cli('prog', 'show', `${NAME}/chain_msg`);
  assert.match(human.stdout, new RegExp(`^chain_msg \\(id ${chainId}\\)\\n`), 'one program: every field, as a record');
  assert.match(human.stdout, /\n {2}pins +\/sys\/fs\/bpf\//);
  const linkPin = join(pinDir, 'xdp', net.ifB, 'link');
  const linkId = idOf('link', linkPin);
  for (const ref of [['id', String(linkId)], ['pinned', linkPin], [`${NAME}/link`], [`${NAME}/xdp/${net.ifB}/link`]]) {
    assert.equal((await json<{ id: number; progId: number }[]>('link', 'show', ...ref)).map((l) => [l.id, l.progId]), [[linkId, xdpId]], ref.join(' '));
  }
});

test('a name that fits several objects is an error listing every candidate', async () => {
  const load = await cli('load', join(DIR, 'other.ts'), '--quiet');
  assert.is(load.code, 0, load.stderr);
  const bare = await cli('map', 'dump', 'routes');
  assert.is(bare.code, 1);
  assert.match(bare.stderr, /^bpfctl: 2 maps match 'routes': habits\/routes, other\/routes \(name one of them exactly\)\n$/);
  assert.is(JSON.parse((await cli('map', 'dump', 'routes', '--json')).stderr).code, 'E_AMBIGUOUS');
  // Kernel names: every chain on the machine has one; ours are among the candidates, by id and pin.
  const byName = await cli('map', 'dump', 'name', 'routes');
  assert.is(byName.code, 1);
  for (const p of [NAME, 'other']) assert.match(byName.stderr, new RegExp(`id ${idOf('map', join(ENV.BPFCTL_BPFFS, p, 'maps/routes'))} \\(${p}/routes\\)`));
  assert.match(byName.stderr, /name one by id N, pinned PATH or POLICY\/NAME\n$/);
  // POLICY/MAP still names one exactly; a policy that has none says where it looked.
  assert.is((await cli('map', 'dump', 'other/routes', '--json')).code, 0);
  const none = await cli('map', 'dump', 'nosuch/routes');
  assert.match(none.stderr, /^bpfctl: no map 'routes' pinned by a loaded policy nosuch \(nothing under .*nosuch; bpfctl status lists loaded policies\)\n$/);
  const usage = await cli('map', 'dump', 'id');
  assert.is(usage.code, 2);
  assert.is((await cli('unload', 'other')).code, 0);
});

test('-j is one compact document, -p the same indented, --version bpfctl X.Y.Z', async () => {
  const j = await cli('-j', 'route', 'ls', NAME);
  assert.is(j.code, 0, j.stderr);
  assert.is(j.stdout.trimEnd().split('\n').length, 1, 'one line');
  const p = await cli('route', 'ls', NAME, '-p');
  assert.match(p.stdout, /^\[\n {2}\{\n {4}"route": "\/hello"/);
  assert.equal(JSON.parse(p.stdout), JSON.parse(j.stdout));
  assert.equal(JSON.parse(j.stdout), JSON.parse((await cli('route', 'ls', NAME, '--json')).stdout));
  const err = await cli('-p', 'map', 'dump', 'nosuch/x');
  assert.is(err.code, 1);
  assert.match(err.stderr, /^\{\n {2}"error": /, 'errors are JSON too, indented with -p');
  const v = await cli('--version');
  assert.match(v.stdout, /^bpfctl \d+\.\d+\.\d+\n$/);
  assert.equal((await cli('-V')).stdout, v.stdout);
  assert.equal((await cli('version')).stdout, v.stdout);
  assert.equal(Object.keys(JSON.parse((await cli('version', '-j')).stdout)).sort(), ['node', 'version']);
});

/** Every table-printing command, against the running policy. */
const TABLES: string[][] = [
  ['status'],
  ['status', NAME],
  ['route', 'ls', NAME],
  ['xdp', 'status', NAME],
  ['set', 'ls', NAME, SET],
  ['prog', 'ls'],
  ['map', 'ls'],
  ['link', 'ls'],
  ['pool', 'ls'],
  ['map', 'dump', `${NAME}/routes`],
  ['map', 'dump', `${NAME}/instances`],
  ['top', NAME, '--count', '1', '--interval', '0.2'],
];

test('tables fit 80 columns, with a rule under each header', async () => {
  let rules = 0;
  for (const args of TABLES) {
    for (const r of [await cli(...args), await cliAt(80, true, ...args), await cliAt(200, false, ...args)]) {
      assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stdout.split('\n');
      for (const l of lines) assert.ok(width(l) <= 80, `bpfctl ${args.join(' ')}: ${width(l)} columns: ${l}`);
      rules += lines.filter((l) => RULE.test(l)).length;
      // The line above each rule is a header: as many columns as the rule has segments.
      lines.forEach((l, i) => {
        if (RULE.test(l)) assert.ok(i > 0 && lines[i - 1]!.trim().length > 0, `${args.join(' ')}: a header above the rule`);
      });
    }
  }
  assert.ok(rules >= TABLES.length * 3, `every command printed a table with a rule (${rules})`);
});

test('wider than 80 only on a terminal that is wider', async () => {
  // The routes map's values (a struct with a 16-hop array and a name) are wider than 80.
  const wide = await cliAt(200, true, 'map', 'dump', `${NAME}/routes`);
  const widest = Math.max(...wide.stdout.split('\n').map(width));
  assert.ok(widest > 80 && widest <= 200, `uses the terminal's 200 columns (${widest})`);
  const narrow = await cliAt(80, true, 'map', 'dump', `${NAME}/routes`);
  assert.ok(narrow.stdout.split('\n').length > wide.stdout.split('\n').length, 'wraps instead');
  assert.equal(JSON.parse((await cli('map', 'dump', `${NAME}/routes`, '-j')).stdout), JSON.parse((await cliAt(80, true, 'map', 'dump', `${NAME}/routes`, '-j')).stdout), 'JSON does not depend on the terminal');
});

test('top says what it counts and shows both: requests per route, messages per hop', async () => {
  const before = await topTotals();
  post('/hello', 12);
  post('/shout', 5);
  const after = await topTotals();
  // A request on /hello (upper, stamp) is one reply at the gateway and three messages.
  assert.is(after.hello.requests - before.hello.requests, 12);
  assert.is(after.hello.messages - before.hello.messages, 36);
  assert.is(after.shout.requests - before.shout.requests, 5);
  assert.is(after.shout.messages - before.shout.messages, 10);
  assert.is(after.fns.get('gateway')! - before.fns.get('gateway')!, 17, 'the gateway received every reply');
  assert.is(after.fns.get('upper')! - before.fns.get('upper')!, 12);
  const human = await cli('top', NAME, '--count', '1', '--interval', '0.2');
  assert.match(human.stdout, /\nreq = requests: replies back at the gateway, one per request\n/);
  assert.match(human.stdout, /\nmsg = messages per hop: descriptors the kernel routed \(hops \+ 1 per request\)\n/);
  assert.match(human.stdout, /\nroute +functions +req\/s +msg\/s +drop\/s +req +msg\n/);
  assert.match(human.stdout, /\nfunction +live +msg\/s +bytes\/s +drop\/s +msg +drops\n/);
  assert.match(human.stdout, /\n\/hello +upper -> stamp +\d+ +\d+ +0 +\d+ +\d+\n/);
  // --json: one object per refresh.
  const j = await cli('top', NAME, '--count', '2', '--interval', '0.2', '--json');
  const docs = j.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { routes: unknown[]; functions: unknown[] });
  assert.is(docs.length, 2);
  assert.ok(docs.every((d) => d.routes.length === 2 && d.functions.length === 3));
});

async function topTotals() {
  const doc = JSON.parse((await cli('top', NAME, '--count', '1', '--interval', '0.1', '--json')).stdout) as {
    routes: { route: string; state: string; requests: number; messages: number }[];
    functions: { function: string; messages: number }[];
  };
  const route = (n: string) => doc.routes.find((r) => r.route === n && r.state === 'current')!;
  return { hello: route('/hello'), shout: route('/shout'), fns: new Map(doc.functions.map((f) => [f.function, f.messages])) };
}

test('graph NAME draws what runs, from the pins: live routes and instances, XDP rules, counters and sets', async () => {
  // Change what runs away from the file: a route added live, one re-pointed (its old version
  // drains), a set grown, and traffic the blocked rule counts.
  assert.is((await cli('route', 'set', NAME, '/new', 'upper')).code, 0);
  assert.is((await cli('route', 'set', NAME, '/shout', 'upper', 'stamp')).code, 0);
  assert.is((await cli('set', 'add', NAME, SET, `${net.ipA}/32`)).code, 0);
  send(7001, 3);
  const dot = await cli('graph', NAME);
  assert.is(dot.code, 0, dot.stderr);
  const t = dot.stdout;
  assert.match(t, /^\/\/ generated by bpfctl from policy habits as it runs\n/);
  assert.match(t, /label="policy habits \(running, from its pins\)"/);
  assert.match(t, /gateway \[label="gateway\\n1\/1 live", shape=ellipse\];/);
  assert.match(t, /fn1 \[label="upper\\n2\/2 live"\];/);
  assert.match(t, /gateway -> fn1 \[label="\/new 1"/, 'the route added live');
  assert.match(t, /fn1 -> gateway \[label="\/new 2"/);
  assert.match(t, /gateway -> fn1 \[label="\/shout 1"/, 'the re-pointed route as it is now');
  assert.match(t, /gateway -> fn2 \[label="\/shout 1 \(draining\)".*style=dashed\];/, 'and its old version, still draining');
  assert.match(t, new RegExp(`label="XDP on ${net.ifB} \\(native\\)"`));
  assert.match(t, new RegExp(`xdp0_r0 \\[label="#0 blocked\\\\nip4 src @${SET}\\\\n-> drop\\\\n3 packets"\\];`), 'the blocked rule counted the 3 packets from nsA');
  assert.match(t, /xdp0_r1 \[label="#1 open\\nip udp dport @ports\\n-> pass\\n7 packets"\];/);
  assert.match(t, new RegExp(`xdp0_set_${SET} \\[label="set ${SET}\\\\nipv4-prefix, 2 elements", shape=folder\\];`), 'the set as it is now');
  assert.match(t, new RegExp(`xdp0_r0 -> xdp0_set_${SET} \\[style=dotted`));
  assert.match(t, /xdp0_r0 -> xdp0_out_drop \[label="match"\];/);
  assert.match(t, /xdp0_default -> xdp0_out_pass;/);
  // The file still says what it said: no /new, no live counts.
  const file = (await cli('graph', join(DIR, 'policy.ts'))).stdout;
  assert.not.match(file, /\/new|live|packets/);
  assert.match(file, /label="XDP on .*\(auto\)"/);
  const mmd = await cli('graph', NAME, '-f', 'mermaid');
  assert.match(mmd.stdout, /^%% generated by bpfctl from policy habits as it runs\nflowchart LR\n/);
  assert.match(mmd.stdout, /\tgateway -\.->\|"\/shout 1 \(draining\)"\| fn2\n/);
  assert.match(mmd.stdout, new RegExp(`\\tsubgraph xdp0\\["XDP on ${net.ifB} \\(native\\)"\\]\\n`));
  const j = JSON.parse((await cli('graph', NAME, '--json')).stdout) as { policy: string; running: boolean; text: string };
  assert.equal([j.policy, j.running], [NAME, true]);
  const notLoaded = await cli('graph', 'nosuch');
  assert.match(notLoaded.stderr, /^bpfctl: policy nosuch is not loaded/);
});

test('stopping the run leaves nothing behind', async () => {
  for (const k of ['prog', 'map', 'link'] as const) {
    const { execFileSync } = await import('node:child_process');
    const list = JSON.parse(execFileSync('bpftool', ['-j', '-f', k, 'show'], { encoding: 'utf8' })) as { id: number; pinned?: string[] }[];
    for (const o of list) if (o.pinned?.some((p) => p.startsWith(`${ENV.BPFCTL_BPFFS}/`))) own.add(`${k}:${o.id}`);
  }
  run!.kill('SIGTERM');
  assert.is(await runExited, 0, runErr.join(''));
  net.destroy();
  rmSync(DIR, { recursive: true, force: true });
  assert.equal(await runLeaks(before, own, [ENV.BPFCTL_BPFFS, ENV.BPFCTL_RUN_DIR, ENV.BPFCTL_CGROUP_PARENT]), []);
});

test.run();
