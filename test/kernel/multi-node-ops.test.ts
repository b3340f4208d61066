/**
 * What a cluster operator does to a running multi-node chain, done to three namespace nodes on a
 * bridge, each with its own `bpfctl agent run` started through the CLI (bin/bpfctl.js) and given
 * the same full --peers list, itself included, as a DaemonSet gives every pod:
 * - the list naming the node itself is taken (a wrong address for itself is one line, nothing
 *   loaded), and a route crossing the nodes answers over HTTP;
 * - the node-link secret rotated the way the kubelet updates a Secret volume (a `..data` symlink
 *   swap), one node after the other, under load: no request fails, no link drops; an agent
 *   restarted in between, with only the old secret, links to nodes that have the new one (the
 *   previous is accepted during the grace), and one restarted with the new secret links too; an
 *   empty secret file is not taken; after the grace a node with only the old secret is refused;
 * - a node-link handshake of another protocol version (raw client and raw server built on the
 *   protocol's encoder) is refused on both sides, counted, logged once, shown in bpfctl status;
 * - nothing is left behind.
 */
import type { ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BPFCTL_BIN, ensureBuilt } from '../helpers/dist.ts';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsBridge, type NetnsBridge } from '../helpers/netns.ts';
import { collect, nsRun, stopChild, until as waitUntil } from '../helpers/ns-procs.ts';
import { PROTOCOL_VERSION as V } from '../../src/runtime/node-link/protocol.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const NAME = 'mnops';
const dir = mkdtempSync(join(repo, `.test-${process.pid}-mnops-`));
const LINK_PORT = 7946;
const HTTP_PORT = 18080;
/** Long enough for an agent restart inside it on this shared machine; the default is 120 s. */
const GRACE_S = 60;
const OLD = 'first-secret-of-the-ops-test';
const NEW = 'second-secret-of-the-ops-test';
let net: NetnsBridge;
let before: Snapshot;

interface Node {
  name: string;
  ns: string;
  ip: string;
  env: Record<string, string>;
  /** The directory a Secret volume would be: `secret` -> `..data/secret`, `..data` -> a generation's directory. */
  secretDir: string;
  generation: number;
  child: ChildProcess | null;
  log: string[];
}
const nodes: Node[] = [];

const POLICY = `import { definePolicy } from 'bpfctl';
export default definePolicy({
  name: '${NAME}',
  functions: {
    upper: { instances: 1, handler: './functions/upper.ts', placement: { nodes: ['a'] } },
    reverse: { instances: 1, handler: './functions/reverse.ts', placement: { nodes: ['b'] } },
    stamp: { instances: 1, handler: './functions/stamp.ts', placement: { nodes: ['c'] } },
  },
  routes: {
    '/hello': ['upper', 'reverse', 'stamp'],
    '/rev': ['upper', 'reverse'],
    '/up': ['upper', 'stamp'],
  },
  pool: { bufferSize: 4096, bufferCount: 512 },
});
`;
const BODY = { '/hello': 'DLROW OLLEH [/hello]', '/rev': 'DLROW OLLEH', '/up': 'HELLO WORLD [/up]' } as const;

// A client run inside a node's namespace: C workers send requests until the stop file exists (or
// N requests when N > 0), then it prints the statuses and wrong bodies.
const CLIENT = join(dir, 'client.mjs');
const CLIENT_SRC = `import http from 'node:http'; import { existsSync } from 'node:fs'; import { dirname } from 'node:path';
const [url, expect, conc, total, stop] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conc) });
const statuses = {}; let wrong = 0; let sent = 0;
const one = () => new Promise((resolve) => {
  const req = http.request(url, { method: 'POST', agent }, (res) => {
    const chunks = []; res.on('data', (c) => chunks.push(c));
    res.on('end', () => { statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      if (res.statusCode === 200 && Buffer.concat(chunks).toString() !== expect) wrong++; resolve(); });
  });
  req.on('error', () => { statuses.error = (statuses.error ?? 0) + 1; resolve(); });
  req.end('hello world');
});
// The test's directory gone (it ended, however) is a stop too: a client never outlives it.
const more = () => (Number(total) > 0 ? sent < Number(total) : !existsSync(stop) && existsSync(dirname(stop)));
const worker = async () => { while (more()) { sent++; await one(); await new Promise((r) => setTimeout(r, 2)); } };
await Promise.all(Array.from({ length: Number(conc) }, worker));
agent.destroy();
process.stdout.write(JSON.stringify({ statuses, wrong }));
`;

// A node-link client of another protocol version: the acceptor's challenge, then an AUTH made by
// the protocol's own encoder for that version, with the right secret, and a DATA frame after it.
const RAW_CLIENT = join(dir, 'raw-client.mjs');
const RAW_CLIENT_SRC = `import net from 'node:net';
import { announcedVersion, authBody, FrameParser, frame, HELLO_HEAD, newNonce, T_AUTH, T_DATA } from '${join(repo, 'src/runtime/node-link/protocol.ts')}';
const [host, port, secret, policy, name, version] = process.argv.slice(2);
const s = net.connect(Number(port), host);
let announced = null; let closed = false;
const p = new FrameParser((type, body) => {
  if (announced !== null) return;
  announced = announcedVersion(type, body);
  s.write(frame(T_AUTH, authBody([Buffer.from(secret)], policy, body.subarray(HELLO_HEAD), newNonce(), name, Number(version))));
  s.write(frame(T_DATA, Buffer.alloc(64, 1)));
});
s.on('data', (c) => p.push(c));
s.on('error', () => {});
const done = (result) => { process.stdout.write(JSON.stringify({ announced, result })); process.exit(0); };
s.on('close', () => { closed = true; done('closed'); });
setTimeout(() => { if (!closed) done('open'); }, 10000);
`;

// A peer that holds the secret and misbehaves on a data connection: it links as `name`, then sends
// what `mode` says and reports whether the connection stayed open.
const DATA_CLIENT = join(dir, 'data-client.mjs');
const DATA_CLIENT_SRC = `import net from 'node:net';
import { authBody, CHANNEL_DATA, FrameParser, frame, HELLO_HEAD, newNonce, PROTOCOL_VERSION, T_AUTH, T_AUTH_OK, T_DATA, T_PING } from '${join(repo, 'src/runtime/node-link/protocol.ts')}';
const [host, port, secret, policy, name, mode] = process.argv.slice(2);
const s = net.connect(Number(port), host);
let stage = 0; let closed = false;
// one record: a descriptor of gateway 0 (node a's), request 12345, the route's name, a payload
const record = (route) => {
  const d = Buffer.alloc(24); d.writeUInt16LE(0, 4); d.writeUInt32LE(12345, 8); d.writeUInt32LE(5, 16);
  const r = Buffer.from(route); const head = Buffer.alloc(6); head[0] = 0; head.writeUInt32LE(1, 1); head[5] = r.length;
  const len = Buffer.alloc(4); len.writeUInt32LE(5);
  return Buffer.concat([d, head, r, len, Buffer.from('hello')]);
};
const p = new FrameParser((type, body) => {
  if (stage === 0) { stage = 1; s.write(frame(T_AUTH, authBody([Buffer.from(secret)], policy, body.subarray(HELLO_HEAD), newNonce(), name, PROTOCOL_VERSION, CHANNEL_DATA))); return; }
  if (stage === 1 && type === T_AUTH_OK) {
    stage = 2;
    if (mode === 'malformed') s.write(frame(T_DATA, Buffer.concat([record('/hello'), Buffer.alloc(40, 0xff)])));
    if (mode === 'unknown-route') s.write(frame(T_DATA, record('/no-such-route')));
    if (mode === 'other-type') s.write(frame(T_PING));
    if (mode === 'huge') { const h = Buffer.alloc(5); h.writeUInt32LE(0xffffff00); h[4] = T_DATA; s.write(h); }
    setTimeout(() => done(closed ? 'closed' : 'open'), 1500);
  }
});
s.on('data', (c) => p.push(c));
s.on('error', () => {});
const done = (result) => { process.stdout.write(JSON.stringify({ linked: stage === 2, result })); process.exit(0); };
s.on('close', () => { closed = true; if (stage < 2) done('closed'); });
setTimeout(() => done(closed ? 'closed' : 'open'), 10000);
`;

// A node-link acceptor of another protocol version at a node's address: it challenges every dialer
// in that version and records what each sends back, until every expected dialer came `times` times.
const RAW_SERVER = join(dir, 'raw-server.mjs');
const RAW_SERVER_SRC = `import net from 'node:net';
import { announcedVersion, challengeBody, FrameParser, frame, newNonce, T_CHALLENGE } from '${join(repo, 'src/runtime/node-link/protocol.ts')}';
const [host, port, version, times, ...dialers] = process.argv.slice(2);
const got = [];
const srv = net.createServer((s) => {
  s.on('error', () => {});
  const from = s.remoteAddress.replace(/^::ffff:/, '');
  s.write(frame(T_CHALLENGE, challengeBody(newNonce(), Number(version))));
  const p = new FrameParser((type, body) => {
    got.push({ from, type, version: announcedVersion(type, body), length: body.length });
    if (dialers.every((d) => got.filter((g) => g.from === d).length >= Number(times))) finish();
  });
  s.on('data', (c) => p.push(c));
});
const finish = () => { process.stdout.write(JSON.stringify(got)); srv.close(); process.exit(0); };
srv.listen(Number(port), host, () => process.stderr.write('listening\\n'));
setTimeout(finish, 60000);
`;

interface Load {
  statuses: Record<string, number>;
  wrong: number;
}

/** A load through a node's gateway until `stop()` (requests under way finish first). */
/** Loads still running (a failed test's): stopped before the leak check. */
const loads = new Set<string>();

function startLoad(n: Node, path: keyof typeof BODY, conc = 4): { stop(): Promise<Load> } {
  const stopFile = join(dir, `stop-${Math.random().toString(36).slice(2)}`);
  const running = collect(nsRun(n.ns, [process.execPath, CLIENT, `http://127.0.0.1:${HTTP_PORT}${path}`, BODY[path], String(conc), '0', stopFile]));
  loads.add(stopFile);
  return {
    stop: async () => {
      writeFileSync(stopFile, '');
      loads.delete(stopFile);
      const r = await running;
      assert.is(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Load;
    },
  };
}

async function load(n: Node, path: keyof typeof BODY, total: number): Promise<Load> {
  const r = await collect(nsRun(n.ns, [process.execPath, CLIENT, `http://127.0.0.1:${HTTP_PORT}${path}`, BODY[path], '8', String(total), '']));
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Load;
}

/** Every request answered 200 with the right body, and some were sent. */
function allOk(l: Load, what: string): void {
  assert.equal(Object.keys(l.statuses), ['200'], `${what}: ${JSON.stringify(l)}`);
  assert.ok(l.statuses['200']! > 0, what);
  assert.is(l.wrong, 0, what);
}

/** The whole cluster's list, every node in it: what each agent is given. */
const peerList = () => nodes.map((p) => `${p.name}=${p.ip}:${LINK_PORT}`).join(',');
const agentArgs = (n: Node, peers = peerList()) => [
  process.execPath, BPFCTL_BIN, 'agent', 'run', '--policy', dir, '--node', n.name, '--listen', `${n.ip}:${LINK_PORT}`, '--peers', peers,
  '--secret-file', join(n.secretDir, 'secret'), '--secret-grace', String(GRACE_S), '--port', String(HTTP_PORT), '--pool', `test-${process.pid}-${n.name}`, '--timeout', '4000',
];

function startAgent(n: Node): void {
  const child = nsRun(n.ns, agentArgs(n), n.env);
  n.child = child;
  const onLine = (c: Buffer) => n.log.push(...c.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', onLine);
  child.stderr!.on('data', onLine);
}

const stopAgent = (n: Node, signal: NodeJS.Signals = 'SIGTERM') => stopChild(n, signal);

/** Writes a secret the way the kubelet updates a Secret volume: a new directory, `..data` renamed over in one step, the old one removed. */
function writeSecret(n: Node, value: string): void {
  const gen = `..2026_12_01_00_00_00.${String(++n.generation).padStart(9, '0')}`;
  mkdirSync(join(n.secretDir, gen), { mode: 0o700 });
  writeFileSync(join(n.secretDir, gen, 'secret'), value, { mode: 0o400 });
  const old = existsSync(join(n.secretDir, '..data')) ? readlinkSync(join(n.secretDir, '..data')) : null;
  symlinkSync(gen, join(n.secretDir, '..data_tmp'));
  renameSync(join(n.secretDir, '..data_tmp'), join(n.secretDir, '..data'));
  if (!existsSync(join(n.secretDir, 'secret'))) symlinkSync('..data/secret', join(n.secretDir, 'secret'));
  if (old) rmSync(join(n.secretDir, old), { recursive: true, force: true });
}

interface AgentStatusFile {
  link: { peers: { name: string; up: boolean; problem: string | null }[]; counters: Record<string, number> };
  secret: { generation: number; previousAcceptedUntil: string | null; warning: string | null };
}

function status(n: Node): AgentStatusFile | null {
  try {
    return JSON.parse(readFileSync(join(n.env.BPFCTL_RUN_DIR!, `${NAME}.agent.json`), 'utf8')) as AgentStatusFile;
  } catch {
    return null;
  }
}

const until = (what: string, ok: () => boolean, ms = 90_000) => waitUntil(what, ok, ms, () => nodes);

const linked = (n: Node, peer: string) => status(n)?.link.peers.some((p) => p.name === peer && p.up) ?? false;
const linkedAll = () => nodes.every((n) => nodes.every((p) => p === n || linked(n, p.name)));
const counter = (n: Node, k: string) => status(n)?.link.counters[k] ?? -1;
/** Log lines of a node from index `from` on that contain `text`. */
const logged = (n: Node, text: string, from = 0) => n.log.slice(from).filter((l) => l.includes(text));
const marks = () => nodes.map((n) => n.log.length);

test.before(async () => {
  before = snapshot();
  ensureBuilt();
  cpSync(join(repo, 'examples/hello-chain/functions'), join(dir, 'functions'), { recursive: true });
  writeFileSync(join(dir, 'policy.ts'), POLICY);
  writeFileSync(CLIENT, CLIENT_SRC);
  writeFileSync(RAW_CLIENT, RAW_CLIENT_SRC);
  writeFileSync(DATA_CLIENT, DATA_CLIENT_SRC);
  writeFileSync(RAW_SERVER, RAW_SERVER_SRC);
  net = createNetnsBridge(3, 'o');
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    const id = `bpfctl-test-${process.pid}-mo-${name}`;
    const { ns, ip } = net.nodes[i]!;
    const secretDir = join(dir, `secret-${name}`);
    mkdirSync(secretDir, { mode: 0o700 });
    nodes.push({ name, ns, ip, secretDir, generation: 0, child: null, log: [], env: { BPFCTL_BPFFS: `/sys/fs/bpf/${id}`, BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${id}`, BPFCTL_RUN_DIR: `/tmp/${id}-run` } });
  }
  for (const n of nodes) writeSecret(n, `${OLD}\n`);
});

test.after(async () => {
  if (existsSync(dir)) for (const f of loads) writeFileSync(f, '');
  for (const n of nodes) await stopAgent(n);
  net?.destroy();
  removeOwnDirs(nodes.flatMap((n) => [n.env.BPFCTL_BPFFS!, n.env.BPFCTL_CGROUP_PARENT!, n.env.BPFCTL_RUN_DIR!]));
  rmSync(dir, { recursive: true, force: true });
});

test("a peer list giving this node another address than it listens on is one line, and nothing is loaded", async () => {
  const [a, b] = nodes as [Node, Node];
  const wrong = peerList().replace(`a=${a.ip}:`, `a=${b.ip}:`);
  const r = await collect(nsRun(a.ns, agentArgs(a, wrong), a.env));
  assert.is(r.code, 1, r.stderr);
  assert.is(r.stderr, `bpfctl: --peers gives this node (a) the address ${b.ip}:${LINK_PORT}, but its node-link listens on ${a.ip}:${LINK_PORT}: the other nodes would dial the wrong place (correct --peers or --listen)\n`);
  assert.not.ok(existsSync(join(a.env.BPFCTL_BPFFS!, NAME)), 'no pins');
});

test('every agent given the full peer list, itself included, links to the others; a route crossing the nodes answers over HTTP', async () => {
  for (const n of nodes) startAgent(n);
  await until('all three agents linked to each other', linkedAll);
  for (const n of nodes) assert.equal(status(n)!.link.peers.map((p) => p.name), nodes.filter((p) => p !== n).map((p) => p.name), `${n.name} does not list itself`);
  allOk(await load(nodes[0]!, '/hello', 300), '/hello through a');
  allOk(await load(nodes[2]!, '/hello', 100), '/hello through c');
});

test('the secret rotated node by node under load: no request fails and no link drops', async () => {
  const [a, b] = nodes as [Node, Node];
  const from = marks();
  const running = startLoad(a, '/hello');
  allOk(await load(a, '/rev', 50), 'a warm-up beside the load');
  writeSecret(a, `${NEW}\n`);
  await until('a took the new secret', () => status(a)?.secret.generation === 2);
  assert.ok(status(a)!.secret.previousAcceptedUntil, 'the previous one is accepted for a while');
  // The log line and the status file travel apart (a pipe, a file): wait for the line too.
  await until('a logged the change', () => logged(a, 'node-link secret changed (generation 2)').length > 0, 5000);
  assert.is(logged(a, 'node-link secret changed (generation 2)').length, 1);
  allOk(await load(a, '/up', 50), 'while only a has the new secret');
  writeSecret(b, `${NEW}\n`);
  await until('b took the new secret', () => status(b)?.secret.generation === 2);
  allOk(await load(b, '/hello', 50), 'while a and b have it, c not');
  const l = await running.stop();
  allOk(l, '/hello under load through the rotations');
  process.stderr.write(`rotation under load: ${JSON.stringify(l)}\n`);
  for (const [i, n] of nodes.entries()) assert.equal(logged(n, ' down', from[i]), [], `${n.name}: no link dropped`);
});

test('an agent restarted with only the old secret links to nodes that have the new one, during the grace', async () => {
  const [a, b, c] = nodes as [Node, Node, Node];
  const running = startLoad(a, '/rev'); // a -> b: not through c
  const prevA = counter(a, 'previousSecret');
  const prevB = counter(b, 'previousSecret');
  await stopAgent(c, 'SIGKILL');
  await until('c down on a and b', () => !linked(a, 'c') && !linked(b, 'c'), 10_000);
  const from = marks();
  startAgent(c);
  await until('c rejoined with the old secret', linkedAll);
  assert.ok(status(a)!.secret.previousAcceptedUntil && status(b)!.secret.previousAcceptedUntil, 'still within the grace');
  // c proved only the old secret to a and b, and took theirs proved with it.
  await until('a and b counted a handshake with the previous secret', () => counter(a, 'previousSecret') > prevA && counter(b, 'previousSecret') > prevB, 5000);
  await until('a logged it', () => logged(a, 'peer c proved only the previous secret', from[0]).length > 0, 5000);
  assert.is(logged(a, 'peer c proved only the previous secret', from[0]).length, 1, a.log.slice(-8).join('\n'));
  allOk(await running.stop(), '/rev while c restarted');
  allOk(await load(a, '/hello', 200), '/hello with c on the old secret');
});

test('an agent restarted with the new secret links; a secret file left empty is not taken', async () => {
  const [a, b, c] = nodes as [Node, Node, Node];
  writeSecret(c, `${NEW}\n`);
  await until('c took the new secret', () => status(c)?.secret.generation === 2);
  const running = startLoad(a, '/up'); // a -> c: not through b
  await stopAgent(b, 'SIGKILL');
  await until('b down on a and c', () => !linked(a, 'b') && !linked(c, 'b'), 10_000);
  writeSecret(b, `${NEW}\n`); // as a restarted pod finds it
  startAgent(b);
  await until('b rejoined with the new secret', linkedAll);
  allOk(await running.stop(), '/up while b restarted');
  allOk(await load(a, '/hello', 200), '/hello with every node on the new secret');
  // An empty secret (a Secret whose key was emptied): a keeps what it has, says so once, shows it.
  const from = marks();
  writeSecret(a, '\n');
  await until('a refused the empty secret', () => status(a)?.secret.warning != null);
  assert.match(status(a)!.secret.warning!, /^the secret file .*secret-a\/secret is empty$/);
  assert.is(status(a)!.secret.generation, 2);
  await until('a logged the warning', () => logged(a, '[agent] warning: the node-link secret is unchanged', from[0]).length > 0, 5000);
  assert.equal(logged(a, '[agent] warning: the node-link secret is unchanged', from[0]).length, 1);
  allOk(await load(a, '/hello', 100), 'still linked with the secret it kept');
  writeSecret(a, `${NEW}\n`);
  await until('the warning is gone once the file holds a secret again', () => status(a)?.secret.warning === null);
  assert.is(status(a)!.secret.generation, 2, 'the same secret again is no rotation');
});

test('after the grace, a node that has only the old secret is refused both ways', async () => {
  const [a, b, c] = nodes as [Node, Node, Node];
  await until('the grace is over everywhere', () => nodes.every((n) => status(n)?.secret.previousAcceptedUntil === null), (GRACE_S + 30) * 1000);
  await until('a logged the end of the grace', () => logged(a, 'the previous one is no longer accepted').length > 0, 5000);
  await stopAgent(c);
  writeSecret(c, `${OLD}\n`);
  const refusedA = counter(a, 'refused');
  const refusedB = counter(b, 'refused');
  startAgent(c);
  // a and b refuse c's proof; c refuses theirs.
  const fromA = a.log.length;
  // c retries every second: refused each time, logged once.
  await until('a and b refused c, twice', () => counter(a, 'refused') >= refusedA + 2 && counter(b, 'refused') >= refusedB + 2);
  assert.is(logged(a, `refused a node-link connection from c (${c.ip}:`, fromA).filter((l) => l.endsWith('no valid proof of the policy secret')).length, 1, a.log.slice(fromA).join('\n'));
  await until('c refused their proofs and shows why it is not linked', () => (status(c)?.link.counters.refused ?? 0) >= 2 && status(c)!.link.peers.every((p) => !p.up && p.problem === 'closed after our proof (another secret?)'));
  await until("c logged a's refusal", () => logged(c, 'peer a at').some((l) => l.includes("closed the connection after this node's proof")), 5000);
  assert.not.ok(linked(a, 'c') || linked(b, 'c'));
  // The route that avoids c keeps serving.
  allOk(await load(a, '/rev', 200), '/rev while c is refused');
});

test('a node-link of another protocol version is refused on both sides, logged once, counted, and shown in bpfctl status', async () => {
  const [a, b, c] = nodes as [Node, Node, Node];
  // c's agent goes; in its place, at its address, an acceptor speaking version 99.
  await stopAgent(c);
  const from = marks();
  const wrongA = counter(a, 'wrongVersion');
  const server = nsRun(c.ns, [process.execPath, '--import', 'tsx', RAW_SERVER, c.ip, String(LINK_PORT), '99', '3', a.ip, b.ip]);
  const got = await collect(server);
  assert.is(got.code, 0, got.stderr);
  const frames = JSON.parse(got.stdout) as { from: string; type: number; version: number | null; length: number }[];
  // Each dialer told its version (V) with the bare head, three times each (it retries), and nothing more.
  for (const ip of [a.ip, b.ip]) {
    const mine = frames.filter((f) => f.from === ip);
    assert.ok(mine.length >= 3, got.stdout);
    assert.ok(mine.every((f) => f.type === 2 && f.version === V && f.length === 6), got.stdout);
  }
  await until('a and b logged it', () => [a, b].every((n, i) => logged(n, 'speaks node-link protocol 99', from[i]).length > 0), 5000);
  for (const [i, n] of [a, b].entries()) {
    const lines = logged(n, 'peer c at', from[i]).filter((l) => l.includes(`speaks node-link protocol 99, this node speaks ${V}: not linked`));
    assert.is(lines.length, 1, `${n.name} logs it once though it dialled ${frames.filter((f) => f.from === n.ip).length} times:\n${n.log.slice(from[i]).join('\n')}`);
  }
  await until("a's status counts the dials and says why c is not up", () => counter(a, 'wrongVersion') >= wrongA + 3 && status(a)!.link.peers.find((p) => p.name === 'c')?.problem === `protocol 99 (this node ${V})`);
  const st = await collect(nsRun(a.ns, [process.execPath, BPFCTL_BIN, 'status', NAME, '--json'], a.env));
  assert.is(st.code, 0, st.stderr);
  const peers = (JSON.parse(st.stdout) as { nodes: { peers: { node: string; up: string }[] } }).nodes.peers;
  assert.is(peers.find((p) => p.node === 'c')?.up, `no: protocol 99 (this node ${V})`, st.stdout);
  const text = await collect(nsRun(a.ns, [process.execPath, BPFCTL_BIN, 'agent', 'status', NAME], a.env));
  assert.ok(text.stdout.includes(`no: protocol 99 (this node ${V})`), text.stdout);

  // The other way: a client of version 99 that holds the right secret, dialling b, then a DATA frame.
  const before = { wrong: counter(b, 'wrongVersion'), received: counter(b, 'received'), refused: counter(b, 'refused') };
  const fromB = b.log.length;
  for (let i = 0; i < 2; i++) {
    const r = await collect(nsRun(a.ns, [process.execPath, '--import', 'tsx', RAW_CLIENT, b.ip, String(LINK_PORT), NEW, NAME, 'a', '99']));
    assert.is(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout), { announced: V, result: 'closed' }, 'b announced its version and closed');
  }
  await until("b's status counts both", () => counter(b, 'wrongVersion') >= before.wrong + 2);
  await sleep(1200); // the status file is rewritten every second: received must still be what it was
  assert.is(counter(b, 'received'), before.received, 'nothing was read past the version');
  assert.is(counter(b, 'refused'), before.refused, 'a version refusal is not a failed proof');
  const lines = logged(b, `refused a node-link connection from a (${a.ip}:`, fromB).filter((l) => l.includes(`it speaks node-link protocol 99, this node speaks ${V}`));
  assert.is(lines.length, 1, b.log.slice(fromB).join('\n'));

  // c comes back with the current secret and links again.
  writeSecret(c, `${NEW}\n`);
  startAgent(c);
  await until('c rejoined', linkedAll);
  allOk(await load(a, '/hello', 200), '/hello after c rejoined');
});

test('a peer holding the secret that sends garbage on a data connection: the batch is refused whole, the connection cut where the stream is lost, the node keeps serving', async () => {
  const [a, b] = nodes as [Node, Node];
  const run = async (mode: string) => {
    const r = await collect(nsRun(a.ns, [process.execPath, '--import', 'tsx', DATA_CLIENT, b.ip, String(LINK_PORT), NEW, NAME, 'a', mode]));
    assert.is(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { linked: boolean; result: string };
  };
  await sleep(1200); // the status file is rewritten every second: counters as of after the last test's load
  const before = { malformed: counter(b, 'malformed'), unknownRoute: counter(b, 'unknownRoute'), received: counter(b, 'received') };
  // A batch whose second record is cut short: not one record of it acts (the first names a real route).
  assert.equal(await run('malformed'), { linked: true, result: 'open' }, 'a malformed batch is dropped, the stream is still in step');
  await until("b's status counts the malformed batch", () => counter(b, 'malformed') === before.malformed + 1, 5000);
  assert.is(counter(b, 'received'), before.received, 'no record of a malformed batch was taken');
  // A record for a route b does not know: answered with a 503 to its gateway's node, counted.
  assert.equal(await run('unknown-route'), { linked: true, result: 'open' });
  await until("b's status counts the unknown route", () => counter(b, 'unknownRoute') === before.unknownRoute + 1, 5000);
  // Anything but DATA on a data connection, or a frame longer than any batch: cut off.
  assert.equal(await run('other-type'), { linked: true, result: 'closed' });
  assert.equal(await run('huge'), { linked: true, result: 'closed' });
  // None of it disturbed the node: the route across all three answers, from a and from b.
  allOk(await load(a, '/hello', 300), '/hello after the garbage');
  allOk(await load(b, '/rev', 200), '/rev from b after the garbage');
});

test('stopped agents leave nothing behind', async () => {
  for (const f of loads) writeFileSync(f, '');
  loads.clear();
  for (const n of nodes) await stopAgent(n);
  for (const n of nodes) {
    assert.not.ok(existsSync(join(n.env.BPFCTL_BPFFS!, NAME)), `${n.name}: pins left`);
    assert.not.ok(existsSync(join(n.env.BPFCTL_RUN_DIR!, `${NAME}.agent.json`)), `${n.name}: status file left`);
  }
  net.destroy();
  rmSync(dir, { recursive: true, force: true });
  const roots = nodes.flatMap((n) => [n.env.BPFCTL_BPFFS!, n.env.BPFCTL_CGROUP_PARENT!, n.env.BPFCTL_RUN_DIR!]);
  assert.equal(await leaksSince(before, { ownDirs: roots }), []);
  removeOwnDirs(roots);
});

test.run();
