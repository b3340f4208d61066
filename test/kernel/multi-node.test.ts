/**
 * A chain spread over two nodes, each a network namespace with its own `bpfctl agent run` (own
 * pin root, pool, cgroup and run directory), joined by a veth pair: real HTTP through one node's
 * gateway whose route crosses to the other node and back, under load with no failure; a process
 * that reaches the node-link port without the secret is refused and injects nothing; the peer's
 * agent killed -> its requests fail with 503 at once, the local routes keep serving; it rejoins;
 * a policy change to the file converges on both; nothing is left behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair, type NetnsPair } from '../helpers/netns.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const NAME = 'mnode';
const dir = mkdtempSync(join(repo, `.test-${process.pid}-mnode-`));
const policyFile = join(dir, 'policy.ts');
const secretFile = join(dir, 'secret');
const CLIENT = join(dir, 'client.mjs');
const LINK_PORT = 7946;
const HTTP_PORT = 18080;
let net: NetnsPair;
let before: Snapshot;

interface Node {
  name: string;
  ns: string;
  ip: string;
  env: Record<string, string>;
  child: ChildProcess | null;
  log: string[];
}
const nodes: Node[] = [];

const POLICY = (upRoute: string) => `import { definePolicy } from 'bpfctl';
export default definePolicy({
  name: '${NAME}',
  functions: {
    upper: { instances: 2, handler: './functions/upper.ts', placement: { nodes: ['a'] } },
    reverse: { instances: 2, handler: './functions/reverse.ts', placement: { nodes: ['b'] } },
    stamp: { instances: 1, handler: './functions/stamp.ts', placement: { labels: { role: 'edge' } } },
  },
  routes: {
    '/hello': ['upper', 'reverse', 'stamp'],
    '/up': ${upRoute},
  },
  pool: { bufferSize: 4096, bufferCount: 512 },
});
`;

// A load client run inside a node's namespace: N requests at concurrency C, statuses and the
// slowest non-200 answer counted.
const CLIENT_SRC = `import http from 'node:http';
const [url, body, total, conc, expect] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conc) });
const statuses = {}; let wrong = 0; let slowestFail = 0; let sent = 0; let done = 0;
const one = () => new Promise((resolve) => {
  const t0 = Date.now();
  const req = http.request(url, { method: 'POST', agent }, (res) => {
    const chunks = []; res.on('data', (c) => chunks.push(c));
    res.on('end', () => { statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      if (res.statusCode === 200 && expect && Buffer.concat(chunks).toString() !== expect) wrong++;
      if (res.statusCode !== 200) slowestFail = Math.max(slowestFail, Date.now() - t0); resolve(); });
  });
  req.on('error', () => { statuses.error = (statuses.error ?? 0) + 1; resolve(); });
  req.end(body);
});
const worker = async () => { while (sent < Number(total)) { sent++; await one(); done++; } };
await Promise.all(Array.from({ length: Number(conc) }, worker));
agent.destroy();
process.stdout.write(JSON.stringify({ statuses, wrong, slowestFail }));
`;

function nsRun(ns: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn('nsenter', [`--net=/run/netns/${ns}`, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function collect(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => out.push(c));
  child.stderr!.on('data', (c: Buffer) => err.push(c));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })));
}

interface Load {
  statuses: Record<string, number>;
  wrong: number;
  slowestFail: number;
}

async function load(n: Node, path: string, total: number, conc: number, expect = ''): Promise<Load> {
  const r = await collect(nsRun(n.ns, [process.execPath, CLIENT, `http://127.0.0.1:${HTTP_PORT}${path}`, 'hello world', String(total), String(conc), expect]));
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Load;
}

const CLI = `import('${join(repo, 'src/cli/main.ts')}').then(async (m) => { process.exitCode = await m.main(process.argv.slice(1)); })`;

function startAgent(n: Node, peer: Node): void {
  const child = nsRun(
    n.ns,
    [process.execPath, '--import', 'tsx', '-e', CLI, 'agent', 'run', '--policy', dir, '--node', n.name, '--labels', n.name === 'a' ? 'role=edge' : 'role=core',
      '--listen', `${n.ip}:${LINK_PORT}`, '--peers', `${peer.name}=${peer.ip}:${LINK_PORT}`, '--secret-file', secretFile, '--port', String(HTTP_PORT), '--pool', `test-${process.pid}-${n.name}`, '--timeout', '4000'],
    n.env,
  );
  n.child = child;
  const onLine = (c: Buffer) => n.log.push(...c.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', onLine);
  child.stderr!.on('data', onLine);
}

function status(n: Node): { link: { peers: { name: string; up: boolean }[]; remote: { function: string; peers: string[] }[]; counters: Record<string, number> }; local: { name: string; state: string }[] } | null {
  const f = join(n.env.BPFCTL_RUN_DIR!, `${NAME}.agent.json`);
  try {
    return JSON.parse(readFileSync(f, 'utf8'));
  } catch {
    return null;
  }
}

async function until(what: string, ok: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${nodes.map((n) => `--- ${n.name}\n${n.log.slice(-15).join('\n')}`).join('\n')}`);
    await sleep(100);
  }
}

const linked = (n: Node, peer: string) => status(n)?.link.peers.some((p) => p.name === peer && p.up) ?? false;

async function stopAgent(n: Node, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const c = n.child;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill(signal);
  await Promise.race([exited, sleep(20_000)]);
  n.child = null;
}

test.before(async () => {
  before = snapshot();
  cpSync(join(repo, 'examples/hello-chain/functions'), join(dir, 'functions'), { recursive: true });
  writeFileSync(policyFile, POLICY("['upper', 'stamp']"));
  writeFileSync(secretFile, 'a-policy-secret-of-some-length\n', { mode: 0o600 });
  writeFileSync(CLIENT, CLIENT_SRC);
  net = createNetnsPair('m');
  for (const [name, ns, ip] of [['a', net.nsA, net.ipA], ['b', net.nsB, net.ipB]] as const) {
    const id = `bpfctl-test-${process.pid}-mn-${name}`;
    nodes.push({ name, ns, ip, child: null, log: [], env: { BPFCTL_BPFFS: `/sys/fs/bpf/${id}`, BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${id}`, BPFCTL_RUN_DIR: `/tmp/${id}-run` } });
  }
  startAgent(nodes[0]!, nodes[1]!);
  startAgent(nodes[1]!, nodes[0]!);
  await until('both agents linked', () => linked(nodes[0]!, 'b') && linked(nodes[1]!, 'a'));
  // each sees the other's functions as remote
  await until('remote functions listed', () => (status(nodes[0]!)?.link.remote.find((r) => r.function === 'reverse')?.peers ?? []).includes('b'));
});

test.after(async () => {
  for (const n of nodes) await stopAgent(n);
  net?.destroy();
  removeOwnDirs(nodes.flatMap((n) => [n.env.BPFCTL_BPFFS!, n.env.BPFCTL_CGROUP_PARENT!, n.env.BPFCTL_RUN_DIR!]));
  rmSync(dir, { recursive: true, force: true });
});

test('a route crossing to the other node and back answers over HTTP, under load, with no failure', async () => {
  const a = nodes[0]!;
  const b = nodes[1]!;
  // a's gateway: upper (a) -> reverse (b) -> stamp (a)
  const ra = await load(a, '/hello', 2000, 16, 'DLROW OLLEH [/hello]');
  assert.equal(ra, { statuses: { 200: 2000 }, wrong: 0, slowestFail: 0 });
  // b's gateway: upper (a) -> reverse (b) -> stamp (a): the request starts on b and crosses twice
  const rb = await load(b, '/hello', 1000, 16, 'DLROW OLLEH [/hello]');
  assert.equal(rb, { statuses: { 200: 1000 }, wrong: 0, slowestFail: 0 });
  await sleep(1200); // the status file is rewritten every second
  const sa = status(a)!;
  // a -> b and back for each of a's requests; b's requests visit a twice (upper, stamp)
  assert.ok(sa.link.counters.sent! >= 4000 && sa.link.counters.received! >= 4000, JSON.stringify(sa.link.counters));
  assert.is(sa.link.counters.failedFast, 0);
});

test('a connection without the secret is refused and injects nothing', async () => {
  const b = nodes[1]!;
  await sleep(1200);
  const before = status(b)!.link.counters;
  // From a's namespace: a forged AUTH frame (wrong key) followed by a DATA frame.
  const probe = `import net from 'node:net'; import { createHmac } from 'node:crypto';
const s = net.connect(${LINK_PORT}, '${b.ip}');
let got = Buffer.alloc(0); let closed = false;
s.on('data', (c) => { got = Buffer.concat([got, c]); if (got.length >= 21) {
  const nonce = Buffer.alloc(16, 7); const mac = createHmac('sha256', 'wrong-secret').update(got.subarray(5, 21)).digest();
  const body = Buffer.concat([Buffer.from([2]), nonce, mac, Buffer.from('a')]); const len = Buffer.alloc(4); len.writeUInt32LE(body.length);
  const data = Buffer.concat([Buffer.from([5]), Buffer.alloc(64, 1)]); const dl = Buffer.alloc(4); dl.writeUInt32LE(data.length);
  s.write(Buffer.concat([len, body, dl, data])); got = Buffer.alloc(-0); } });
s.on('error', () => {}); s.on('close', () => { closed = true; process.stdout.write('closed'); });
setTimeout(() => { if (!closed) { process.stdout.write('open'); s.destroy(); } }, 3000);`;
  const r = await collect(nsRun(nodes[0]!.ns, [process.execPath, '--input-type=module', '-e', probe]));
  assert.is(r.stdout, 'closed', r.stderr);
  await sleep(1200);
  const after = status(b)!.link.counters;
  assert.is(after.received, before.received, 'nothing was received from the forged connection');
  assert.is(after.refused, before.refused! + 1, JSON.stringify(after));
  assert.ok(b.log.some((l) => l.includes('refused a node-link connection')), b.log.slice(-10).join('\n'));
  // and the chain still serves across the nodes
  assert.equal(await load(nodes[0]!, '/hello', 200, 8, 'DLROW OLLEH [/hello]'), { statuses: { 200: 200 }, wrong: 0, slowestFail: 0 });
});

test("the peer's agent killed: its requests fail with 503 at once, local routes keep serving; it rejoins", async () => {
  const a = nodes[0]!;
  const b = nodes[1]!;
  // Load across the nodes while b dies.
  const crossing = load(a, '/hello', 3000, 16);
  await sleep(700);
  await stopAgent(b, 'SIGKILL');
  const cr = await crossing;
  process.stderr.write(`kill under load: ${JSON.stringify(cr)}\n`);
  assert.ok((cr.statuses['200'] ?? 0) > 0, JSON.stringify(cr));
  assert.is(cr.statuses['504'], undefined, `no request waited for the deadline: ${JSON.stringify(cr)}`);
  assert.is(cr.statuses.error, undefined, JSON.stringify(cr));
  assert.ok((cr.statuses['503'] ?? 0) > 0, JSON.stringify(cr));
  // the failures came fast, well under the 4 s reply deadline
  assert.ok(cr.slowestFail < 2500, `slowest failure ${cr.slowestFail} ms`);
  await until('b down on a', () => !linked(a, 'b'), 5000);
  // a's own route keeps serving with no failure
  assert.equal(await load(a, '/up', 500, 8, 'HELLO WORLD [/up]'), { statuses: { 200: 500 }, wrong: 0, slowestFail: 0 });
  // b comes back (its agent restarted; it cleans up what the killed one left) and rejoins
  startAgent(b, a);
  await until('b rejoined', () => linked(a, 'b') && linked(b, 'a') && (status(a)?.link.remote.find((r) => r.function === 'reverse')?.peers ?? []).includes('b'));
  assert.equal(await load(a, '/hello', 500, 16, 'DLROW OLLEH [/hello]'), { statuses: { 200: 500 }, wrong: 0, slowestFail: 0 });
});

test('a policy change to the file converges on both nodes with no failed request', async () => {
  const a = nodes[0]!;
  const b = nodes[1]!;
  const running = load(a, '/hello', 3000, 8, 'DLROW OLLEH [/hello]');
  writeFileSync(policyFile, POLICY("['upper', 'reverse']"));
  await until('both applied', () => [a, b].every((n) => n.log.some((l) => l.includes('[agent] applied'))), 20_000);
  assert.equal(await running, { statuses: { 200: 3000 }, wrong: 0, slowestFail: 0 });
  assert.equal(await load(a, '/up', 200, 8, 'DLROW OLLEH'), { statuses: { 200: 200 }, wrong: 0, slowestFail: 0 });
  assert.equal(await load(b, '/up', 200, 8, 'DLROW OLLEH'), { statuses: { 200: 200 }, wrong: 0, slowestFail: 0 });
});

test('stopped agents leave nothing behind', async () => {
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
