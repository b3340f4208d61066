/**
 * A chain spread over three nodes, each a network namespace with its own `bpfctl agent run` (own
 * pin root, pool, cgroup and run directory), all on one bridge: real HTTP through every node's
 * gateway on a route that crosses all three, under load with no failure; a process that reaches a
 * node-link port without the secret is refused and injects nothing; a peer's agent killed, and
 * another node's namespace deleted, under load -> only their requests fail, with 503 at once, the
 * routes that avoid them keep serving; both rejoin; a policy change to the file converges on every
 * node with no failed request; nothing is left behind. Nodes a and c move descriptors with the
 * native data path, b with the agent's own event loop (`--node-link-engine node`): both engines,
 * linked to each other.
 */
import type { ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsBridge, type NetnsBridge } from '../helpers/netns.ts';
import { collect, nsRun, stopChild, until as waitUntil } from '../helpers/ns-procs.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const NAME = 'mnode';
const dir = mkdtempSync(join(repo, `.test-${process.pid}-mnode-`));
const policyFile = join(dir, 'policy.ts');
const secretFile = join(dir, 'secret');
const CLIENT = join(dir, 'client.mjs');
const LINK_PORT = 7946;
const HTTP_PORT = 18080;
let net: NetnsBridge;
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

// upper on a, reverse on b, stamp on every node labelled edge (c): /hello crosses all three.
// spin (1 ms of CPU per request) runs one instance on a and one on b: a's spills to b under load.
const POLICY = (upRoute: string, spinPlacement = "{ nodes: ['a', 'b'] }") => `import { definePolicy } from 'bpfctl';
export default definePolicy({
  name: '${NAME}',
  functions: {
    upper: { instances: 2, handler: './functions/upper.ts', placement: { nodes: ['a'] } },
    reverse: { instances: 2, handler: './functions/reverse.ts', placement: { nodes: ['b'] } },
    stamp: { instances: 1, handler: './functions/stamp.ts', placement: { labels: { role: 'edge' } } },
    spin: { instances: 2, handler: './functions/spin.ts', placement: ${spinPlacement} },
  },
  routes: {
    '/hello': ['upper', 'reverse', 'stamp'],
    '/up': ${upRoute},
    '/rev': ['upper', 'reverse'],
    '/spin': ['spin'],
  },
  pool: { bufferSize: 4096, bufferCount: 512 },
});
`;

// A load client run inside a node's namespace: N requests at concurrency C, statuses and the
// slowest non-200 answer counted.
const CLIENT_SRC = `import http from 'node:http';
const [url, body, total, conc, expect, pause] = process.argv.slice(2);
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
const worker = async () => { while (sent < Number(total)) { sent++; await one(); done++;
  if (pause) await new Promise((r) => setTimeout(r, Number(pause))); } };
const t0 = performance.now();
await Promise.all(Array.from({ length: Number(conc) }, worker));
const rps = Math.round(Number(total) / ((performance.now() - t0) / 1000));
agent.destroy();
process.stdout.write(JSON.stringify({ statuses, wrong, slowestFail, rps }));
`;

interface Load {
  statuses: Record<string, number>;
  wrong: number;
  slowestFail: number;
}

/** N requests at concurrency C (each worker pausing `pause` ms between its requests); the statuses, without the rate. */
async function load(n: Node, path: string, total: number, conc: number, expect = '', pause = 0): Promise<Load> {
  const { rps: _, ...rest } = await loadRate(n, path, total, conc, expect, pause);
  return rest;
}

async function loadRate(n: Node, path: string, total: number, conc: number, expect = '', pause = 0): Promise<Load & { rps: number }> {
  const r = await collect(nsRun(n.ns, [process.execPath, CLIENT, `http://127.0.0.1:${HTTP_PORT}${path}`, 'hello world', String(total), String(conc), expect, String(pause)]));
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Load & { rps: number };
}

const CLI = `import('${join(repo, 'src/cli/main.ts')}').then(async (m) => { process.exitCode = await m.main(process.argv.slice(1)); })`;

function startAgent(n: Node): void {
  const peers = nodes.filter((p) => p !== n).map((p) => `${p.name}=${p.ip}:${LINK_PORT}`).join(',');
  const child = nsRun(
    n.ns,
    [process.execPath, '--import', 'tsx', '-e', CLI, 'agent', 'run', '--policy', dir, '--node', n.name, '--labels', n.name === 'c' ? 'role=edge' : 'role=core',
      '--listen', `${n.ip}:${LINK_PORT}`, '--peers', peers, '--secret-file', secretFile, '--port', String(HTTP_PORT), '--pool', `test-${process.pid}-${n.name}`, '--timeout', '4000',
      // b moves its descriptors with the agent's own event loop, a and c with the native data path: both engines, speaking to each other
      ...(n.name === 'b' ? ['--node-link-engine', 'node'] : [])],
    n.env,
  );
  n.child = child;
  const onLine = (c: Buffer) => n.log.push(...c.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', onLine);
  child.stderr!.on('data', onLine);
}

function status(n: Node): { link: { peers: { name: string; up: boolean }[]; remote: { function: string; peers: string[] }[]; counters: Record<string, number>; pending: number }; local: { name: string; state: string }[] } | null {
  const f = join(n.env.BPFCTL_RUN_DIR!, `${NAME}.agent.json`);
  try {
    return JSON.parse(readFileSync(f, 'utf8'));
  } catch {
    return null;
  }
}

const until = (what: string, ok: () => boolean, ms = 60_000) => waitUntil(what, ok, ms, () => nodes);

const linked = (n: Node, peer: string) => status(n)?.link.peers.some((p) => p.name === peer && p.up) ?? false;

const stopAgent = (n: Node, signal: NodeJS.Signals = 'SIGTERM') => stopChild(n, signal);

// 1 ms of CPU per request, answering its payload unchanged.
const SPIN = `export default function spin(req: { body: Uint8Array }): number {
  const end = performance.now() + 1;
  while (performance.now() < end);
  return req.body.length;
}
`;

const linkedAll = () => nodes.every((n) => nodes.every((p) => p === n || linked(n, p.name)));
const hosts = (n: Node, fn: string) => status(n)?.link.remote.find((r) => r.function === fn)?.peers ?? [];
const BODY = { '/hello': 'DLROW OLLEH [/hello]', '/up': 'HELLO WORLD [/up]', '/rev': 'DLROW OLLEH' } as const;
const allOk = (n: number) => ({ statuses: { 200: n }, wrong: 0, slowestFail: 0 });

test.before(async () => {
  before = snapshot();
  cpSync(join(repo, 'examples/hello-chain/functions'), join(dir, 'functions'), { recursive: true });
  writeFileSync(join(dir, 'functions/spin.ts'), SPIN);
  writeFileSync(policyFile, POLICY("['upper', 'stamp']"));
  writeFileSync(secretFile, 'a-policy-secret-of-some-length\n', { mode: 0o600 });
  writeFileSync(CLIENT, CLIENT_SRC);
  net = createNetnsBridge(3, 'm');
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    const id = `bpfctl-test-${process.pid}-mn-${name}`;
    const { ns, ip } = net.nodes[i]!;
    nodes.push({ name, ns, ip, child: null, log: [], env: { BPFCTL_BPFFS: `/sys/fs/bpf/${id}`, BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${id}`, BPFCTL_RUN_DIR: `/tmp/${id}-run` } });
  }
  for (const n of nodes) startAgent(n);
  await until('all three agents linked to each other', linkedAll);
  // each sees the others' functions as remote
  await until('remote functions listed', () => hosts(nodes[0]!, 'reverse').includes('b') && hosts(nodes[0]!, 'stamp').includes('c') && hosts(nodes[2]!, 'upper').includes('a'));
});

test.after(async () => {
  for (const n of nodes) await stopAgent(n);
  net?.destroy();
  removeOwnDirs(nodes.flatMap((n) => [n.env.BPFCTL_BPFFS!, n.env.BPFCTL_CGROUP_PARENT!, n.env.BPFCTL_RUN_DIR!]));
  rmSync(dir, { recursive: true, force: true });
});

test('every route answers over HTTP through every node, under load, with no failure', async () => {
  const [a, b, c] = nodes as [Node, Node, Node];
  // a's gateway: upper (a) -> reverse (b) -> stamp (c) -> back to a
  assert.equal(await load(a, '/hello', 2000, 16, BODY['/hello']), allOk(2000));
  // entering at b and at c: the request leaves for a first and visits all three
  assert.equal(await load(b, '/hello', 800, 16, BODY['/hello']), allOk(800));
  assert.equal(await load(c, '/hello', 800, 16, BODY['/hello']), allOk(800));
  for (const n of nodes) for (const path of ['/up', '/rev'] as const) assert.equal(await load(n, path, 200, 8, BODY[path]), allOk(200), `${n.name} ${path}`);
  await sleep(1200); // the status file is rewritten every second
  for (const n of nodes) {
    const k = status(n)!.link.counters;
    // every /hello request crosses each node at least twice (in and out), whichever gateway took it
    assert.ok(k.sent! >= 3600 && k.received! >= 3600, `${n.name}: ${JSON.stringify(k)}`);
    assert.is(k.failedFast, 0, n.name);
    assert.is(k.noBuffer, 0, n.name);
  }
});

test('bpfctl status on a node names the node of every remote instance', async () => {
  const a = nodes[0]!;
  const cli = (args: string[]) => collect(nsRun(a.ns, [process.execPath, '--import', 'tsx', '-e', CLI, ...args], a.env));
  const text = await cli(['status', NAME]);
  assert.is(text.code, 0, text.stderr);
  const fnRow = (name: string) => text.stdout.split('\n').find((l) => new RegExp(`^\\s*\\d+\\s+${name}\\s`).test(l)) ?? '';
  assert.match(fnRow('reverse'), /@b/, text.stdout);
  assert.match(fnRow('stamp'), /@c/, text.stdout);
  assert.not.match(fnRow('upper'), /@/, text.stdout);
  assert.match(text.stdout, /Nodes \(this is a/);
  const json = await cli(['status', NAME, '--json']);
  const s = JSON.parse(json.stdout) as { nodes: { node: string; peers: { node: string; up: string; runs: string }[] } };
  assert.is(s.nodes.node, 'a');
  assert.equal(s.nodes.peers.map((p) => [p.node, p.up, p.runs]), [['b', 'yes', 'reverse,spin'], ['c', 'yes', 'stamp']]);
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
  assert.equal(await load(nodes[0]!, '/hello', 200, 8, BODY['/hello']), allOk(200));
});

test('an overloaded function spills to the other node that runs it, only under load, and stops after', async () => {
  const [a, b] = nodes as [Node, Node];
  const sentBy = async (n: Node) => {
    await sleep(1200); // the status file is rewritten every second
    return status(n)!.link.counters.sent!;
  };
  const s0 = await sentBy(a);
  // Light load: every request served by a's own instance.
  assert.equal(await load(a, '/spin', 60, 1, 'hello world', 10), allOk(60));
  assert.is(await sentBy(a), s0, 'a light load stays on the local instance');
  assert.not.ok(a.log.some((l) => l.includes('spilling spin')), a.log.slice(-5).join('\n'));
  // Heavy load: a's one instance is saturated, part of the requests goes to b's, none fails.
  const heavy = await loadRate(a, '/spin', 4000, 16, 'hello world');
  const { rps: spilledRps, ...statuses } = heavy;
  assert.equal(statuses, allOk(4000));
  assert.ok(a.log.some((l) => l.includes('[node-link] spilling spin to b')), a.log.slice(-10).join('\n'));
  const s1 = await sentBy(a);
  assert.ok(s1 - s0 > 200, `spilled ${s1 - s0} of 4000 requests`);
  // b runs spin too, but a spills it: b must not spill it back (and is not loaded anyway).
  assert.not.ok(b.log.some((l) => l.includes('spilling spin')), b.log.slice(-5).join('\n'));
  // The load is gone: spilling stops, and light load is local again.
  await until('spilling stops', () => a.log.some((l) => l.includes('[node-link] stopped spilling spin')), 5000);
  const s2 = await sentBy(a);
  assert.equal(await load(a, '/spin', 60, 1, 'hello world', 10), allOk(60));
  assert.is(await sentBy(a), s2, 'local again once the load is gone');
  // With spill: false the same load stays on the one local instance (and is slower).
  const applied = a.log.filter((l) => l.includes('[agent] applied')).length;
  writeFileSync(policyFile, POLICY("['upper', 'stamp']", "{ nodes: ['a', 'b'], spill: false }"));
  await until('a applied spill: false', () => a.log.filter((l) => l.includes('[agent] applied')).length > applied, 20_000);
  const s3 = await sentBy(a);
  const alone = await loadRate(a, '/spin', 4000, 16, 'hello world');
  assert.is(alone.statuses['200'], 4000, JSON.stringify(alone));
  assert.is(await sentBy(a), s3, 'spill: false keeps every request local');
  process.stderr.write(`spin at c=16: ${s1 - s0} of 4000 sent to b, ${spilledRps} req/s spilling to b, ${alone.rps} req/s with spill: false (${(spilledRps / alone.rps).toFixed(2)}x)\n`);
  writeFileSync(policyFile, POLICY("['upper', 'stamp']"));
  await until('a applied the policy back', () => a.log.filter((l) => l.includes('[agent] applied')).length > applied + 1, 20_000);
});

/** Load through a's gateway while `kill` takes a node away; the failures must be 503s, and fast. */
async function loadThroughLoss(kill: () => Promise<void>): Promise<Load> {
  const a = nodes[0]!;
  // Paced (5 ms between a connection's requests): still in flight when the node goes, however fast the chain is.
  const crossing = load(a, '/hello', 4000, 16, '', 5);
  await sleep(700);
  await kill();
  const cr = await crossing;
  await sleep(1200);
  process.stderr.write(`node lost under load: ${JSON.stringify(cr)} a's link: ${JSON.stringify(status(a)?.link.counters)}\n`);
  assert.ok((cr.statuses['200'] ?? 0) > 0, JSON.stringify(cr));
  assert.is(cr.statuses['504'], undefined, `no request waited for the deadline: ${JSON.stringify(cr)}`);
  assert.is(cr.statuses.error, undefined, JSON.stringify(cr));
  assert.ok((cr.statuses['503'] ?? 0) > 0, JSON.stringify(cr));
  // the failures came fast, well under the 4 s reply deadline
  assert.ok(cr.slowestFail < 2500, `slowest failure ${cr.slowestFail} ms`);
  return cr;
}

test("a peer's agent killed: its requests fail with 503 at once, routes without it keep serving; it rejoins", async () => {
  const [a, b, c] = nodes as [Node, Node, Node];
  await loadThroughLoss(() => stopAgent(b, 'SIGKILL'));
  await until('b down on a and c', () => !linked(a, 'b') && !linked(c, 'b'), 5000);
  // a route that avoids b (a -> c) keeps serving with no failure, from a and from c
  assert.equal(await load(a, '/up', 500, 8, BODY['/up']), allOk(500));
  assert.equal(await load(c, '/up', 300, 8, BODY['/up']), allOk(300));
  // b comes back (its agent restarted; it cleans up what the killed one left) and rejoins
  startAgent(b);
  await until('b rejoined', () => linkedAll() && hosts(a, 'reverse').includes('b') && hosts(c, 'reverse').includes('b'));
  assert.equal(await load(a, '/hello', 500, 16, BODY['/hello']), allOk(500));
});

test("a node's namespace deleted: the others notice its silence, fail its requests with 503 at once, keep serving; it rejoins", async () => {
  const [a, b, c] = nodes as [Node, Node, Node];
  // The node's network goes away with no FIN or RST to anyone: only silence tells.
  await loadThroughLoss(async () => net.deleteNode(2));
  await until('c down on a and b', () => !linked(a, 'c') && !linked(b, 'c'), 5000);
  assert.ok(a.log.some((l) => l.includes('peer c silent')), a.log.slice(-10).join('\n'));
  // a route that avoids c (a -> b) keeps serving, from both remaining gateways
  assert.equal(await load(a, '/rev', 500, 8, BODY['/rev']), allOk(500));
  assert.equal(await load(b, '/rev', 300, 8, BODY['/rev']), allOk(300));
  // The agent still runs in the namespace that lost its name; stopped, it leaves nothing behind.
  await stopAgent(c);
  assert.not.ok(existsSync(join(c.env.BPFCTL_BPFFS!, NAME)), 'c: pins left');
  assert.not.ok(existsSync(join(c.env.BPFCTL_RUN_DIR!, `${NAME}.agent.json`)), 'c: status file left');
  // The node comes back: a new namespace with the same address, a new agent.
  net.recreateNode(2);
  startAgent(c);
  await until('c rejoined', () => linkedAll() && hosts(a, 'stamp').includes('c') && hosts(b, 'stamp').includes('c'));
  assert.equal(await load(a, '/hello', 500, 16, BODY['/hello']), allOk(500));
  assert.equal(await load(c, '/hello', 300, 16, BODY['/hello']), allOk(300));
});

test('a policy change to the file converges on every node with no failed request', async () => {
  const running = load(nodes[0]!, '/hello', 3000, 8, BODY['/hello']);
  const applied = nodes.map((n) => n.log.filter((l) => l.includes('[agent] applied')).length);
  writeFileSync(policyFile, POLICY("['upper', 'reverse']"));
  await until('every node applied', () => nodes.every((n, i) => n.log.filter((l) => l.includes('[agent] applied')).length > applied[i]!), 20_000);
  assert.equal(await running, allOk(3000));
  for (const n of nodes) assert.equal(await load(n, '/up', 200, 8, 'DLROW OLLEH'), allOk(200), n.name);
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
