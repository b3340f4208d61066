/**
 * Wakeup coalescing on packet chains (`packetChains.X.coalesce: { us }`, docs/packet-chains.md,
 * "Coalescing"), as users run it: `bpfctl run --netns DUT` and paced floods from a sender
 * namespace through two chains of one `count` function each, one coalescing and one not:
 *
 *   sender ns (sX) ──veth──► DUT ns (dIn: XDP + AF_XDP) ─┬─ plain:   a ─┬─► (dOut) ──veth──► receiver ns (rX)
 *                                                         └─ batched: b ─┘
 *
 * What is compared is counted, never timed: frames per batch and futex wakeups of the two
 * functions (the plane's counters), and the voluntary context switches of pktio's threads
 * (/proc, one per sleep). Checked each time: every frame sent entered its chain and left it
 * transmitted (entered = out + dropped + lost + reclaimed), the receiver got them all, and with
 * the traffic stopped the pool's buffers in use are the ones posted to the kernel.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureBuilt } from '../helpers/dist.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { eth, ipv4, udp } from '../helpers/packets.ts';
import { sh } from '../helpers/sh.ts';
import { cli, createRig, flood, NF_DIR, type Rig, type Running, sleep, startRun, sum, tearDown } from './packet-rig.ts';

const ID = `bpfctl-test-${process.pid}-pco`;
const POLICY = `pco${process.pid % 100000}`;
/** A window far longer than the flood's gap (1 ms at 1000 frames/s): ~5 frames share one. */
const COALESCE_US = 5000;
const PPS = 1000;
let rig: Rig;
let dir = '';
let before: Snapshot;
let run: Running | null = null;

function writePolicy(plainToo: 'plain' | 'coalesced'): string {
  const file = join(dir, `policy-${plainToo}.ts`);
  // `plain` does not coalesce in the first policy; in the second both chains do (then pktio's
  // RX thread may sleep on a timer, no chain's frame needing it sooner).
  const plainCoalesce = plainToo === 'coalesced' ? `, coalesce: { us: ${COALESCE_US} }` : '';
  writeFileSync(
    file,
    `import { definePolicy, pass, toChain, xdpSection } from 'bpfctl';
export default definePolicy({
  name: '${POLICY}',
  pool: { bufferSize: 2048, bufferCount: 1024 },
  packetFunctions: {
    a: { handler: '${NF_DIR}/count.c' },
    b: { handler: '${NF_DIR}/count.c' },
  },
  packetChains: {
    plain: { functions: ['a'], egress: { tx: '${rig.ifs.dOut}' }${plainCoalesce} },
    batched: { functions: ['b'], egress: { tx: '${rig.ifs.dOut}' }, coalesce: { us: ${COALESCE_US} } },
  },
  xdp: [
    xdpSection({
      interface: '${rig.ifs.dIn}',
      rules: [toChain('plain', { proto: 'udp', dport: 5000 }), toChain('batched', { proto: 'udp', dport: 5001 }), pass({})],
    }),
  ],
});
`,
  );
  return file;
}

const frameTo = (dport: number, sport: number) =>
  eth({ src: rig.mac[rig.ifs.sX]!, dst: rig.mac[rig.ifs.dIn]! }, ipv4({ src: rig.ip.s, dst: rig.ip.r, ttl: 64 }, udp({ sport, dport }, Uint8Array.from(Buffer.from('coalesce')))));

interface Inst {
  rx: number;
  passed: number;
  batches: number;
  wakeups: number;
  reclaimed: number;
}
interface Status {
  packet: {
    chains: { name: string; in: number; out: number; dropped: number; lost: number; coalesceUs?: number }[];
    functions: { name: string; instances: Inst[] }[];
    ports: { posted: number }[];
    pool: { inUse: number };
  };
  processes: { kind: string; name: string; pid: number; state: string }[];
}

function status(): Status {
  const r = cli(rig, ['status', POLICY, '--json']);
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const chain = (s: Status, name: string) => s.packet.chains.find((c) => c.name === name)!;
const inst = (s: Status, fn: string) => s.packet.functions.find((f) => f.name === fn)!.instances[0]!;
const pktioPid = (s: Status) => s.processes.find((p) => p.kind === 'pktio')!.pid;

/** Sleeps pktio's threads have made so far (each voluntary context switch is one). */
function sleepsOf(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
    n += Number(m?.[1] ?? 0);
  }
  return n;
}

/** Frames the receiver's veth got (the DUT's own chatter on that link is turned off). */
function receiverRx(): number {
  const l = JSON.parse(sh('ip', ['-n', rig.ns.r, '-s', '-j', 'link', 'show', 'dev', rig.ifs.rX]))[0];
  return Number(l.stats64.rx.packets);
}

interface Delta {
  sent: Record<string, number>;
  chains: Record<string, { in: number; out: number; dropped: number; lost: number }>;
  fns: Record<string, { rx: number; batches: number; wakeups: number; reclaimed: number }>;
  received: number;
  pktioSleeps: number;
  after: Status;
}

/** Paced floods on the given chains at once (dport 5000: plain, 5001: batched), and what they did. */
async function measure(flows: { chain: string; dport: number }[], seconds = 2): Promise<Delta> {
  const s0 = status();
  const pid = pktioPid(s0);
  const r0 = receiverRx();
  const z0 = sleepsOf(pid);
  const counts = await Promise.all(flows.map((f, i) => flood(rig.ns.s, rig.ifs.sX, seconds, PPS, frameTo(f.dport, 46000 + i))));
  // Long enough for a window to end and the last frames to go out
  await sleep(500);
  const s1 = status();
  const z1 = sleepsOf(pid);
  const d: Delta = { sent: {}, chains: {}, fns: {}, received: receiverRx() - r0, pktioSleeps: z1 - z0, after: s1 };
  flows.forEach((f, i) => {
    d.sent[f.chain] = counts[i]!;
  });
  for (const c of ['plain', 'batched']) {
    const a = chain(s0, c);
    const b = chain(s1, c);
    d.chains[c] = { in: b.in - a.in, out: b.out - a.out, dropped: b.dropped - a.dropped, lost: b.lost - a.lost };
  }
  for (const f of ['a', 'b']) {
    const a = inst(s0, f);
    const b = inst(s1, f);
    d.fns[f] = { rx: b.rx - a.rx, batches: b.batches - a.batches, wakeups: b.wakeups - a.wakeups, reclaimed: b.reclaimed - a.reclaimed };
  }
  return d;
}

/** Every frame sent entered its chain, left it transmitted and reached the receiver; no buffer astray. */
function allDelivered(d: Delta): void {
  for (const [c, sent] of Object.entries(d.sent)) {
    const k = d.chains[c]!;
    assert.ok(sent > 100, `${c}: the flood sent ${sent} frames`);
    assert.is(k.in, sent, `${c}: every frame sent entered the chain`);
    assert.is(k.in, k.out + k.dropped + k.lost, `${c}: entered = out + dropped + lost`);
    assert.is(k.out, sent, `${c}: and was transmitted`);
  }
  assert.is(d.received, sum(Object.values(d.sent)), 'the receiver got every frame');
  assert.is(d.after.packet.pool.inUse, sum(d.after.packet.ports.map((p) => p.posted)), 'buffers in use = posted to the kernel: none held or lost');
}

const perBatch = (f: { rx: number; batches: number }) => f.rx / Math.max(1, f.batches);

test.before(() => {
  ensureBuilt();
  before = snapshot();
  dir = mkdtempSync(join(tmpdir(), `${ID}-`));
  rig = createRig(ID, `pc${process.pid % 10000}`, 83);
  // Only the chain's frames on the receiver's link: no IPv6 neighbour or MLD chatter either way.
  for (const [ns, ifn] of [
    [rig.ns.d, rig.ifs.dOut],
    [rig.ns.r, rig.ifs.rX],
  ] as const) {
    sh('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${ifn}.disable_ipv6=1`]);
  }
});

test.after(() => tearDown(rig, run, dir));

let mixedSleepsPerFrame = 0;

test('a coalescing chain beside a plain one: several frames per batch and fewer wakeups, every frame delivered', async () => {
  run = await startRun(rig, [writePolicy('plain'), '--netns', rig.ns.d, '--pool', ID]);
  const d = await measure([
    { chain: 'plain', dport: 5000 },
    { chain: 'batched', dport: 5001 },
  ]);
  allDelivered(d);
  const a = d.fns.a!;
  const b = d.fns.b!;
  // 1000 frames/s: the plain chain's function gets them one at a time; the coalescing chain's
  // gets about 5 ms of them at once.
  assert.ok(perBatch(b) >= 2.5, `coalesced: ${perBatch(b).toFixed(2)} frames per batch (${b.rx} in ${b.batches})`);
  assert.ok(perBatch(b) >= 2 * perBatch(a), `coalesced ${perBatch(b).toFixed(2)} vs plain ${perBatch(a).toFixed(2)} frames per batch`);
  assert.ok(b.wakeups * 2 <= a.wakeups, `the coalescing chain's function woke ${b.wakeups} times, the plain one ${a.wakeups}`);
  mixedSleepsPerFrame = d.pktioSleeps / sum(Object.values(d.sent));
  // status says which chain coalesces, and by how much
  assert.is(chain(d.after, 'batched').coalesceUs, COALESCE_US);
  assert.not.ok('coalesceUs' in chain(d.after, 'plain'));
  const text = cli(rig, ['status', POLICY]);
  assert.is(text.status, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`batched(\\s+\\d+){4}\\s+${COALESCE_US} us`));
});

test('every chain coalescing: pktio sleeps on a timer too, and sleeps less per frame than beside a plain chain', async () => {
  run!.child.kill('SIGINT');
  assert.is(await run!.exited, 0, run!.stderr);
  run = await startRun(rig, [writePolicy('coalesced'), '--netns', rig.ns.d, '--pool', ID]);
  const d = await measure([
    { chain: 'plain', dport: 5000 },
    { chain: 'batched', dport: 5001 },
  ]);
  allDelivered(d);
  assert.ok(perBatch(d.fns.a!) >= 2.5, `a: ${perBatch(d.fns.a!).toFixed(2)} frames per batch`);
  assert.ok(perBatch(d.fns.b!) >= 2.5, `b: ${perBatch(d.fns.b!).toFixed(2)} frames per batch`);
  const perFrame = d.pktioSleeps / sum(Object.values(d.sent));
  // Beside a plain chain pktio's RX thread wakes for every frame (that chain's frames must not
  // wait); with every chain coalescing it wakes once per window.
  assert.ok(perFrame * 2 <= mixedSleepsPerFrame, `pktio slept ${perFrame.toFixed(3)} times per frame, ${mixedSleepsPerFrame.toFixed(3)} beside a plain chain`);
});

test('pktio killed while it holds frames: they come back to the pool, the books balance, frames flow again', async () => {
  const s0 = status();
  const pid = pktioPid(s0);
  const flooding = flood(rig.ns.s, rig.ifs.sX, 2, PPS, frameTo(5001, 47000));
  await sleep(1000);
  process.kill(pid, 'SIGKILL');
  const sent = await flooding;
  let s1 = s0;
  for (let i = 0; i < 50; i++) {
    await sleep(200);
    s1 = status();
    const now = s1.processes.find((p) => p.kind === 'pktio')!;
    if (now.pid !== pid && now.state === 'ready') break;
  }
  assert.is.not(pktioPid(s1), pid, 'a new pktio');
  const a = chain(s0, 'batched');
  const b = chain(s1, 'batched');
  const reclaimed = inst(s1, 'b').reclaimed - inst(s0, 'b').reclaimed;
  const entered = b.in - a.in;
  assert.ok(entered > 0 && entered <= sent, `${entered} of ${sent} frames entered the chain`);
  // Frames pktio held had not entered the chain yet: they went back to the pool with its buffers.
  assert.is(entered, b.out - a.out + (b.dropped - a.dropped) + (b.lost - a.lost) + reclaimed, 'entered = out + dropped + lost + reclaimed');
  assert.is(s1.packet.pool.inUse, sum(s1.packet.ports.map((p) => p.posted)), 'no buffer lost');
  const d = await measure([{ chain: 'batched', dport: 5001 }], 1);
  allDelivered(d);
});

test('Ctrl-C removes everything: processes, sockets, pins, pool', async () => {
  run!.child.kill('SIGINT');
  assert.is(await run!.exited, 0, run!.stderr);
  rig.destroy();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [rig.env.BPFCTL_BPFFS!, rig.env.BPFCTL_RUN_DIR!] }), []);
});

test.run();
