/**
 * pktio and packet functions on real veths: frames sent from one namespace are steered by an XDP
 * program (test/fixtures/packet-steer.bpf.c: the classifier's metadata word and xskmap redirect)
 * into AF_XDP sockets whose UMEM is the pool, go through the chain's C functions over the plane's
 * rings, and leave on another veth byte for byte (or back out of the port they came in on, for
 * macswap's REFLECT). Counters of ports, chains and instances say what happened; afterwards the
 * pool holds exactly what pktio posted, and after SIGTERM nothing at all.
 *
 *   nsA: ifA ──veth── ifB (nsB, ingress, XDP)      pktio in nsB
 *                     ifC (nsB, egress) ──veth── ifD (nsD, capture)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type BpfObject, BpfObject as Obj, type XdpAttachment } from '../../loader/index.ts';
import { buildPacketFunction, buildPktio } from '../../src/runtime/packet/build.ts';
import { PacketPlane } from '../../src/runtime/packet/plane.ts';
import { Pool } from '../../src/runtime/pool/index.ts';
import { fixtureObject } from '../fixtures/fixture-path.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair, type NetnsPair } from '../helpers/netns.ts';
import { ROOT } from '../helpers/packet-c.ts';
import { eth, ipv4, udp } from '../helpers/packets.ts';
import { sh } from '../helpers/sh.ts';

const test = suite('packet pktio');
let before: Snapshot;
const root = `/sys/fs/bpf/bpfctl-test-${process.pid}-pktio`;
const mapPin = join(root, 'xsk_chains');
let netIn: NetnsPair;
let netOut: NetnsPair;
let ifC = '';
let pool: Pool | undefined;
let plane: PacketPlane;
let obj: BpfObject | undefined;
let xdp: XdpAttachment | undefined;
const procs = new Set<ChildProcess>();
let pktioExe = '';
const nfExe: Record<string, string> = {};

const CAPTURE = `
import json, select, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
print('ready', flush=True)
frames = []
while True:
    r, _, _ = select.select([s, sys.stdin], [], [], 0.2)
    if sys.stdin in r and not sys.stdin.readline():
        break
    if s in r:
        data, addr = s.recvfrom(65535)
        if addr[2] != socket.PACKET_OUTGOING and b'bpfctl-pkt' in data:
            frames.append(data.hex())
print(json.dumps(frames), flush=True)
`;

const SEND = `
import json, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for h in json.load(sys.stdin):
    s.send(bytes.fromhex(h))
    time.sleep(0.0002)
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const macOf = (ns: string, ifname: string) => JSON.parse(sh('ip', ['-n', ns, '-j', 'link', 'show', 'dev', ifname]))[0].address as string;
const ifindexOf = (ns: string, ifname: string) => JSON.parse(sh('ip', ['-n', ns, '-j', 'link', 'show', 'dev', ifname]))[0].ifindex as number;

/** Start a process that says "ready ..." on fd 3; resolves with the line (rejects if it exits first). */
function startReady(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; line: string; stderr: () => string; exit: Promise<number | null> }> {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env, BPFCTL_READY_FD: '3' }, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  procs.add(proc);
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const exit = new Promise<number | null>((r) =>
    proc.on('exit', (code) => {
      procs.delete(proc);
      r(code);
    }),
  );
  return new Promise((resolve, reject) => {
    let line = '';
    (proc.stdio[3] as Readable).on('data', (d: Buffer) => {
      line += d.toString();
      if (line.endsWith('\n')) resolve({ proc, line: line.trim(), stderr: () => err, exit });
    });
    void exit.then((code) => reject(new Error(`${cmd} exited ${code} before it was ready: ${err.trim()}`)));
  });
}

function capture(ns: string, ifname: string): Promise<{ stop: () => Promise<string[]> }> {
  const proc = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', CAPTURE, ifname], { stdio: ['pipe', 'pipe', 'inherit'] });
  procs.add(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  const done = new Promise<string[]>((res, rej) =>
    proc.on('close', () => {
      procs.delete(proc);
      try {
        res(JSON.parse(out.trim().split('\n').pop() ?? '[]'));
      } catch {
        rej(new Error(`capture said: ${out}`));
      }
    }),
  );
  done.catch(() => {});
  return new Promise((resolve) => {
    proc.stdout!.on('data', () => {
      if (!out.startsWith('ready\n')) return;
      resolve({
        stop: () => {
          proc.stdin!.end();
          return done;
        },
      });
    });
  });
}

function send(ns: string, ifname: string, frames: Uint8Array[]): void {
  sh('ip', ['netns', 'exec', ns, 'python3', '-c', SEND, ifname], { input: JSON.stringify(frames.map((f) => Buffer.from(f).toString('hex'))) });
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function startNf(name: string, fn: number, inst: number, env: Record<string, string> = {}) {
  return startReady(nfExe[name]!, [], { BPFCTL_POOL: pool!.path, BPFCTL_PKT_FN: String(fn), BPFCTL_PKT_INST: String(inst), BPFCTL_PKT_POLL: '0', BPFCTL_FN_NAME: name, ...env });
}

const startPktio = (extra: string[] = []) =>
  startReady('/usr/bin/nsenter', [`--net=/run/netns/${netIn.nsB}`, pktioExe, '--pool', pool!.path, '--port', `0:${netIn.ifB}:${mapPin}`, '--port', `1:${ifC}`, ...extra], {});

test.before(async () => {
  before = snapshot();
  netIn = createNetnsPair('p');
  netOut = createNetnsPair('q');
  // the egress veth joins the ingress one in nsB; its peer stays in netOut.nsB for the capture
  ifC = netOut.ifA;
  sh('ip', ['-n', netOut.nsA, 'link', 'set', ifC, 'netns', netIn.nsB]);
  sh('ip', ['-n', netIn.nsB, 'link', 'set', ifC, 'up']);
  pktioExe = await buildPktio();
  for (const n of ['count', 'macswap']) nfExe[n] = await buildPacketFunction(join(ROOT, `examples/packet-nat/nf/${n}.c`));
});

test.after.each(() => {
  for (const p of procs) p.kill('SIGKILL');
});

function cleanup(): void {
  for (const p of procs) p.kill('SIGKILL');
  try {
    xdp?.close();
    obj?.close();
  } finally {
    if (pool) {
      pool.close();
      Pool.remove(pool.path);
    }
    netIn?.destroy();
    netOut?.destroy();
    rmSync(root, { recursive: true, force: true });
  }
}
test.after(cleanup);

const FN_COUNT = 0;
const FN_MACSWAP = 1;

test('frames through pktio and C functions: out the other veth byte for byte, reflected, counted, nothing kept', async () => {
  pool = Pool.create({ name: `test-${process.pid}-pktio`, bufferSize: 2048, bufferCount: 512, backing: 'shm', extSize: PacketPlane.sizeFor(2) });
  plane = PacketPlane.init(pool, {
    functions: [{ name: 'count' }, { name: 'macswap' }],
    chains: [
      { name: 'direct', functions: [], egress: { kind: 'tx', port: 1 }, poll: false },
      { name: 'counted', functions: [FN_COUNT], egress: { kind: 'tx', port: 1 }, poll: false },
      { name: 'reflect', functions: [FN_MACSWAP], egress: { kind: 'drop' }, poll: false },
      { name: 'sink', functions: [], egress: { kind: 'drop' }, poll: false },
    ],
    ports: [
      { interface: netIn.ifB, ifindex: ifindexOf(netIn.nsB, netIn.ifB) },
      { interface: ifC, ifindex: ifindexOf(netIn.nsB, ifC) },
    ],
  });
  obj = Obj.open(fixtureObject('packet-steer'));
  obj.load();
  mkdirSync(root, { recursive: true });
  obj.map('xsk_chains').pin(mapPin);
  xdp = obj.program('steer').attachXdp(netIn.ifB, { netns: netIn.nsB, mode: 'native' });

  const count = await startNf('count', FN_COUNT, 0);
  const macswap = await startNf('macswap', FN_MACSWAP, 0);
  assert.match(count.line, new RegExp(`^ready count 0 ${count.proc.pid} ring=1 mode=event$`));
  plane.setLive(FN_COUNT, [0]);
  plane.setLive(FN_MACSWAP, [0]);

  const io = await startPktio();
  assert.match(io.line, new RegExp(`^ready pktio 0 ${io.proc.pid} ports=${netIn.ifB}:copy,${ifC}:copy queues=1$`));
  let snap = plane.snapshot();
  assert.equal(
    snap.ports.map((p) => [p.bound, p.zeroCopy, p.nqueues]),
    [
      [true, false, 1],
      [true, false, 1],
    ],
  );
  assert.ok(snap.ports[0]!.posted > 0n, 'fill ring stocked from the pool');
  assert.is(BigInt(pool.stats().inUse), snap.ports[0]!.posted + snap.ports[1]!.posted, 'pool in use = what pktio posted');

  const macB = macOf(netIn.nsB, netIn.ifB);
  const macA = macOf(netIn.nsA, netIn.ifA);
  const frame = (dport: number, i: number) =>
    eth({ src: macA, dst: macB }, ipv4({ src: netIn.ipA, dst: netIn.ipB }, udp({ sport: 40000 + i, dport }, new TextEncoder().encode(`bpfctl-pkt ${dport} ${i} ${'x'.repeat(i % 7)}`))));
  const toChain0 = Array.from({ length: 20 }, (_, i) => frame(7000, i));
  const toChain1 = Array.from({ length: 20 }, (_, i) => frame(7001, i));
  const toChain2 = Array.from({ length: 10 }, (_, i) => frame(7002, i));
  const toSink = Array.from({ length: 5 }, (_, i) => frame(7003, i));
  const toNoChain = Array.from({ length: 5 }, (_, i) => frame(7063, i));

  const out = await capture(netOut.nsB, netOut.ifB);
  const back = await capture(netIn.nsA, netIn.ifA);
  send(netIn.nsA, netIn.ifA, [...toChain0, ...toChain1, ...toChain2, ...toSink, ...toNoChain]);
  await waitFor('the frames to come out', () => {
    const s = plane.snapshot();
    return s.ports[1]!.tx >= 40n && s.ports[0]!.tx >= 10n && s.ports[0]!.rx >= 60n;
  });
  await sleep(300);
  const gotOut = (await out.stop()).map((h) => Buffer.from(h, 'hex'));
  const gotBack = (await back.stop()).map((h) => Buffer.from(h, 'hex'));

  // chains 0 and 1 leave on the egress veth as sent; each chain's frames in their order
  const sentHex = (fs: Uint8Array[]) => fs.map((f) => Buffer.from(f).toString('hex'));
  const outHex = gotOut.map((b) => b.toString('hex'));
  assert.equal(
    outHex.filter((h) => sentHex(toChain0).includes(h)),
    sentHex(toChain0),
    'direct chain: byte for byte, in order',
  );
  assert.equal(
    outHex.filter((h) => sentHex(toChain1).includes(h)),
    sentHex(toChain1),
    'through count: byte for byte, in order',
  );
  assert.is(gotOut.length, 40, `only chains 0 and 1 leave on the egress veth (${gotOut.length})`);
  // chain 2: back out of the ingress port with the MACs swapped
  const swapped = toChain2.map((f) => Buffer.concat([Buffer.from(f.slice(6, 12)), Buffer.from(f.slice(0, 6)), Buffer.from(f.slice(12))]).toString('hex'));
  assert.equal(
    gotBack.map((b) => b.toString('hex')).filter((h) => swapped.includes(h)),
    swapped,
    'macswap reflected every frame',
  );

  snap = plane.snapshot();
  const [pin, pout] = snap.ports;
  assert.is(pin!.rx, 60n);
  assert.is(pin!.noChain, 10n, 'chain 3 has no functions and drops; chain 63 does not exist');
  assert.is(pin!.lost, 0n);
  assert.is(pin!.tx, 10n);
  assert.is(pout!.tx, 40n);
  assert.is(pin!.txFail + pout!.txFail, 0n);
  assert.equal(
    snap.chains.map((c) => [c.name, c.in, c.out, c.dropped, c.lost]),
    [
      ['direct', 20n, 20n, 0n, 0n],
      ['counted', 20n, 20n, 0n, 0n],
      ['reflect', 10n, 10n, 0n, 0n],
      ['sink', 0n, 0n, 0n, 0n],
    ],
  );
  const inst = (f: number) => snap.functions[f]!.instances.find((i) => i.inst === 0)!;
  assert.equal([inst(FN_COUNT).rx, inst(FN_COUNT).passed, inst(FN_COUNT).dropped, inst(FN_COUNT).lost], [20n, 20n, 0n, 0n]);
  assert.equal([inst(FN_MACSWAP).rx, inst(FN_MACSWAP).passed, inst(FN_MACSWAP).lost], [10n, 10n, 0n]);
  assert.ok(inst(FN_COUNT).batches >= 1n && inst(FN_COUNT).wakeups >= 1n, 'count slept on its ring and was woken');

  // every transmitted buffer came back: the pool holds just the fill rings again
  await waitFor('completions', () => {
    const s = plane.snapshot();
    return BigInt(pool!.stats().inUse) === s.ports[0]!.posted + s.ports[1]!.posted;
  });

  // SIGTERM: pktio lets go of everything; the functions drain and exit 0
  io.proc.kill('SIGTERM');
  assert.is(await io.exit, 0, io.stderr());
  assert.is(pool.stats().inUse, 0, 'nothing held after pktio stopped');
  snap = plane.snapshot();
  assert.equal(
    snap.ports.map((p) => [p.bound, p.posted]),
    [
      [false, 0n],
      [false, 0n],
    ],
  );
  count.proc.kill('SIGTERM');
  macswap.proc.kill('SIGTERM');
  assert.is(await count.exit, 0, count.stderr());
  assert.is(await macswap.exit, 0, macswap.stderr());
  assert.match(count.stderr(), /^count: udp 20 frames \d+ bytes\n$/);
  assert.is(pool.stats().inUse, 0);
});

test('untagged frames are no_chain, also in buffers that carried a chain word before', async () => {
  const io = await startPktio(['--fill', '32']);
  const macB = macOf(netIn.nsB, netIn.ifB);
  const macA = macOf(netIn.nsA, netIn.ifA);
  const frame = (dport: number, i: number) => eth({ src: macA, dst: macB }, ipv4({ src: netIn.ipA, dst: netIn.ipB }, udp({ sport: 30000 + i, dport }, new TextEncoder().encode(`bpfctl-pkt untagged ${i}`))));
  const base = plane.snapshot();
  const out = await capture(netOut.nsB, netOut.ifB);
  // tagged frames for chain 0 leave their word in the buffers; freed, the buffers go back to the fill rings
  send(netIn.nsA, netIn.ifA, Array.from({ length: 100 }, (_, i) => frame(7000, i)));
  await waitFor('the tagged frames out', () => plane.snapshot().ports[1]!.tx - base.ports[1]!.tx >= 100n);
  await sleep(200);
  send(netIn.nsA, netIn.ifA, Array.from({ length: 100 }, (_, i) => frame(7100, i)));
  await waitFor('the untagged frames in', () => plane.snapshot().ports[0]!.rx - base.ports[0]!.rx >= 200n);
  await sleep(200);
  const got = await out.stop();
  const s = plane.snapshot();
  assert.is(s.ports[0]!.noChain - base.ports[0]!.noChain, 100n, 'every untagged frame is no_chain');
  assert.is(s.ports[1]!.tx - base.ports[1]!.tx, 100n, 'none of them was taken for chain 0');
  assert.is(got.length, 100);
  io.proc.kill('SIGTERM');
  assert.is(await io.exit, 0);
  assert.is(pool!.stats().inUse, 0);
});

test('a second pktio: on the same pool it is refused (ring 0 has its consumer); on the same queues it fails naming the port and the reason; neither leaves anything', async () => {
  const io = await startPktio();
  const inUse = pool!.stats().inUse;
  const same = await startPktio().then(
    () => null,
    (e: Error) => e,
  );
  assert.match(String(same?.message), new RegExp(`exited 1 before it was ready: pktio: ring 0 \\(transmit\\) is consumed by pid ${io.proc.pid}, which is alive: another pktio on this pool$`));
  // another policy's pool on the same interface: the kernel refuses the queue
  const other = Pool.create({ name: `test-${process.pid}-pktio2`, bufferSize: 2048, bufferCount: 64, backing: 'shm', extSize: PacketPlane.sizeFor(0) });
  try {
    PacketPlane.init(other, { functions: [], chains: [], ports: [{ interface: netIn.ifB, ifindex: 0 }] });
    const busy = await startReady('/usr/bin/nsenter', [`--net=/run/netns/${netIn.nsB}`, pktioExe, '--pool', other.path, '--port', `0:${netIn.ifB}:${mapPin}`], {}).then(
      () => null,
      (e: Error) => e,
    );
    assert.match(String(busy?.message), new RegExp(`exited 1 before it was ready: pktio: ${netIn.ifB} queue 0: bind: Device or resource busy$`));
    assert.is(other.stats().inUse, 0, 'the failed one took nothing from its pool');
  } finally {
    other.close();
    Pool.remove(other.path);
  }
  assert.is(pool!.stats().inUse, inUse, 'the running pktio is untouched');
  io.proc.kill('SIGTERM');
  assert.is(await io.exit, 0);
  assert.is(pool!.stats().inUse, 0);
});

test('bad arguments and a missing interface: one line, non-zero exit', async () => {
  const r1 = await startReady(pktioExe, ['--pool', pool!.path, '--port', '0:nope0'], {}).catch((e: Error) => e.message);
  assert.match(String(r1), /exited 1 before it was ready: pktio: nope0: no such interface in this network namespace$/);
  const r2 = await startReady(pktioExe, ['--pool', pool!.path], {}).catch((e: Error) => e.message);
  assert.match(String(r2), /exited 2 before it was ready: usage: pktio --pool PATH --port/);
  const r3 = await startReady(pktioExe, ['--pool', '/dev/shm/bpfctl-pool-none', '--port', '0:lo'], {}).catch((e: Error) => e.message);
  assert.match(String(r3), /exited 1 before it was ready: pktio: cannot open pool \/dev\/shm\/bpfctl-pool-none: No such file or directory$/);
  // --coalesce CHAIN:US, as the runtime writes it from packetChains.X.coalesce (the IR bounds US)
  for (const bad of ['0:0', '0:10001', '64:200', '0', '0:', 'x:200', '0:200us']) {
    const r = await startReady(pktioExe, ['--pool', pool!.path, '--port', '0:lo', '--coalesce', bad], {}).catch((e: Error) => e.message);
    assert.match(String(r), new RegExp(`exited 2 before it was ready: pktio: --coalesce wants CHAIN:US with CHAIN < 64 and US 1..10000, got '${bad}'$`), bad);
  }
});

// uvu swallows errors thrown by hooks: the leak check is the last test.
test('nothing leaks', async () => {
  cleanup();
  pool = undefined;
  obj = undefined;
  xdp = undefined;
  const leaks = await leaksSince(before);
  assert.equal(leaks, [], leaks.join('\n'));
});

test.run();
