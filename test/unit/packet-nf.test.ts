/**
 * The example packet functions (examples/packet-nat/nf/*.c), built by src/runtime/packet/build.ts
 * and linked with test/c/packet_nf_harness.c instead of the runtime main: crafted frames in, the
 * verdict and the rewritten frame out. Checksums of rewritten frames are verified here in
 * TypeScript (test/helpers/packets.ts), independently of the C helpers that produced them.
 * Also: a handler that does not compile is an E_PACKET_FUNCTION error with clang's diagnostics.
 *
 * Then the real runtime (nf_main.c) on a real plane, without AF_XDP: test/c/packet_plane_test.c
 * plays pktio (routes frames to a chain's first function by flow hash; consumes ring 0), the
 * instances run as processes, and every frame, counter and pool buffer is accounted for: spread
 * over instances by flow with each flow in order, no instance live (lost, freed), SIGTERM with
 * frames queued (drained first), a second consumer of one ring (refused).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildPacketFunction, PacketFunctionBuildError } from '../../src/runtime/packet/build.ts';
import { PacketPlane } from '../../src/runtime/packet/plane.ts';
import { Pool } from '../../src/runtime/pool/index.ts';
import { type BuiltC, buildC, lastJson, ROOT, runC } from '../helpers/packet-c.ts';
import { checksum, eth, ipv4, ipv6, tcp, udp, icmp, padded } from '../helpers/packets.ts';

const NEXT = 0;
const DROP = 1;
const REFLECT = 2;

const cacheDir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-packet-nf-`));
const HARNESS = join(ROOT, 'test/c/packet_nf_harness.c');
const built = new Map<string, Promise<string>>();
const nf = (name: string) => {
  if (!built.has(name)) built.set(name, buildPacketFunction(join(ROOT, `examples/packet-nat/nf/${name}.c`), { cacheDir, runtime: HARNESS }));
  return built.get(name)!;
};

interface Out {
  verdict: number;
  frame: Uint8Array;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Run the handler on batches of [port, frame]; resolves with each batch's results and stderr. */
async function run(name: string, batches: [number, Uint8Array][][], env: Record<string, string> = {}): Promise<{ code: number | null; out: Out[][]; stderr: string }> {
  const bin = await nf(name);
  const child = spawn(bin, [], { env: { ...process.env, BPFCTL_FN_NAME: name, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const input = batches.map((b) => `${b.map(([port, f]) => `F ${port} ${hex(f)}\n`).join('')}B\n`).join('');
  child.stdin.on('error', () => {}); // a handler whose init fails exits before reading: EPIPE
  child.stdin.end(input);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const out: Out[][] = [];
  let cur: Out[] = [];
  for (const line of stdout.split('\n')) {
    if (line === '.') {
      out.push(cur);
      cur = [];
    } else if (line) {
      const [v, h] = line.split(' ');
      cur.push({ verdict: Number(v), frame: Uint8Array.from(Buffer.from(h ?? '', 'hex')) });
    }
  }
  return { code, out, stderr };
}

const MAC_A = '02:aa:00:00:00:01';
const MAC_B = '02:bb:00:00:00:02';
const mac = (f: Uint8Array, at: number) => [...f.slice(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
const u16 = (f: Uint8Array, at: number) => (f[at]! << 8) | f[at + 1]!;
const ip4At = (f: Uint8Array, at: number) => [...f.slice(at, at + 4)].join('.');

/** IPv4 header and UDP/TCP checksums of an Ethernet + IPv4 frame, each 0 when right. */
function checksumsOf(f: Uint8Array): { ip: number; l4: number; l4Field: number } {
  const ihl = (f[14]! & 15) * 4;
  const total = u16(f, 16);
  const proto = f[23]!;
  const l4 = f.slice(14 + ihl, 14 + total);
  const pseudo = Uint8Array.from([...f.slice(26, 34), 0, proto, l4.length >> 8, l4.length & 0xff]);
  const field = proto === 17 ? u16(l4, 6) : u16(l4, 16);
  return { ip: checksum(f.slice(14, 14 + ihl)), l4: checksum(pseudo, l4), l4Field: field };
}

test('macswap: MACs swapped and reflected; a runt is dropped', async () => {
  const f = eth({ src: MAC_A, dst: MAC_B }, ipv4({}, udp({ dport: 9 }, new Uint8Array(20))));
  const r = await run('macswap', [[[0, f], [1, f.slice(0, 10)]]]);
  assert.is(r.code, 0, r.stderr);
  const [a, runt] = r.out[0]!;
  assert.is(a!.verdict, REFLECT);
  assert.is(mac(a!.frame, 0), MAC_A);
  assert.is(mac(a!.frame, 6), MAC_B);
  assert.equal(a!.frame.slice(12), f.slice(12), 'the rest untouched');
  assert.is(runt!.verdict, DROP);
});

test('count: everything passes unchanged; totals per protocol on stderr at the end', async () => {
  const frames: Uint8Array[] = [
    eth({}, ipv4({}, udp({}, new Uint8Array(10)))),
    eth({}, ipv4({}, udp({}, new Uint8Array(30)))),
    eth({}, ipv4({}, tcp({}))),
    eth({}, ipv6({ ext: [{ type: 'hop' }] }, udp({}, new Uint8Array(4)))),
    eth({ type: 0x0806 }, new Uint8Array(28)),
  ];
  const r = await run('count', [frames.slice(0, 3).map((f) => [0, f]), frames.slice(3).map((f) => [0, f])]);
  assert.is(r.code, 0, r.stderr);
  const outs = r.out.flat();
  assert.is(outs.length, 5);
  outs.forEach((o, i) => {
    assert.is(o.verdict, NEXT);
    assert.equal(o.frame, frames[i]);
  });
  const udpBytes = frames[0]!.length + frames[1]!.length + frames[3]!.length;
  assert.match(r.stderr, new RegExp(`^count: tcp 1 frames ${frames[2]!.length} bytes, udp 3 frames ${udpBytes} bytes, non-ip 1 frames ${frames[4]!.length} bytes\\n$`));
});

test('vxlan_decap: the inner frame comes out exactly; anything not VXLAN is dropped', async () => {
  const inner = eth({ src: MAC_A, dst: MAC_B }, ipv4({ src: '10.1.0.1', dst: '10.1.0.2' }, udp({ dport: 5000 }, new Uint8Array(40).fill(7))));
  const vxlan = (flags: number, body: Uint8Array) => Uint8Array.from([flags, 0, 0, 0, 0, 0x12, 0x34, 0, ...body]);
  const outer = (flags: number, body: Uint8Array, dport = 4789) => eth({}, ipv4({ src: '198.18.0.1', dst: '198.18.0.2' }, udp({ sport: 49152, dport }, vxlan(flags, body))));
  const good = outer(0x08, inner);
  const padTail = padded(outer(0x08, eth({}, new Uint8Array(0))), 90); // 14-byte inner frame, Ethernet padding after the IP packet
  const r = await run('vxlan_decap', [
    [
      [0, good],
      [0, outer(0x08, inner, 53)],
      [0, outer(0x00, inner)],
      [0, outer(0x08, inner.slice(0, 13))],
      [0, eth({}, ipv4({}, tcp({ dport: 4789 })))],
      [0, eth({}, ipv6({}, udp({ dport: 4789 }, vxlan(0x08, inner))))],
      [0, padTail],
      [0, good.slice(0, 60)],
    ],
  ]);
  assert.is(r.code, 0, r.stderr);
  const o = r.out[0]!;
  assert.is(o[0]!.verdict, NEXT);
  assert.equal(o[0]!.frame, inner, 'decapsulated byte for byte');
  assert.equal(
    o.slice(1, 6).map((x) => x.verdict),
    [DROP, DROP, DROP, DROP, DROP],
    'not 4789, no I flag, inner shorter than Ethernet, TCP, IPv6 outer',
  );
  assert.is(o[6]!.verdict, NEXT);
  assert.is(o[6]!.frame.length, 14, 'padding after the IP packet is not part of the inner frame');
  assert.is(o[7]!.verdict, DROP, 'a truncated outer packet');
});

test('snat: outbound gets SNAT_ADDR and a port of the range, inbound is translated back, checksums stay right', async () => {
  const env = { SNAT_ADDR: '198.18.9.1', SNAT_PORTS: '20000-20002' };
  const out1 = eth({}, ipv4({ src: '10.0.0.5', dst: '198.51.100.7', ttl: 64 }, udp({ sport: 5555, dport: 53 }, new Uint8Array(33).fill(1))));
  const out2 = eth({}, ipv4({ src: '10.0.0.5', dst: '198.51.100.7' }, udp({ sport: 5556, dport: 53 }, new Uint8Array(8))));
  const out3 = eth({}, ipv4({ src: '10.0.0.6', dst: '198.51.100.8' }, tcp({ sport: 40000, dport: 443 }, new Uint8Array(17).fill(9))));
  const out4 = eth({}, ipv4({ src: '10.0.0.7', dst: '198.51.100.8' }, udp({ sport: 1, dport: 2 })));
  const back = (dport: number, sport = 53, src = '198.51.100.7') => eth({}, ipv4({ src, dst: '198.18.9.1', ttl: 30 }, udp({ sport, dport }, new Uint8Array(12).fill(3))));
  const noCsum = back(20000);
  noCsum[14 + 20 + 6] = 0;
  noCsum[14 + 20 + 7] = 0;
  const r = await run(
    'snat',
    [
      [
        [0, out1],
        [0, out1],
        [0, out2],
        [0, out3],
        [0, out4],
      ],
      [
        [1, back(20000)],
        [0, back(20000)],
        [1, back(20000, 54)],
        [1, back(20001, 53, '198.51.100.9')],
        [1, back(20005)],
        [1, noCsum],
        [1, eth({}, ipv4({ src: '198.51.100.8', dst: '198.18.9.1' }, tcp({ sport: 443, dport: 20002 }, new Uint8Array(5))))],
        [1, back(20002, 443, '198.51.100.8')],
      ],
      [
        [0, eth({}, ipv4({ src: '10.0.0.5', dst: '198.51.100.7', ttl: 1 }, udp({ sport: 5555, dport: 53 })))],
        [0, eth({}, ipv4({ src: '10.0.0.5', dst: '198.51.100.7' }, icmp({})))],
        [0, eth({}, ipv6({}, udp({})))],
        [0, eth({}, ipv4({ src: '10.0.0.5', dst: '198.51.100.7', fragOffset: 3 }, udp({ sport: 5555, dport: 53 })))],
      ],
    ],
    env,
  );
  assert.is(r.code, 0, r.stderr);
  const [outs, backs, drops] = r.out as [Out[], Out[], Out[]];
  const src = (f: Uint8Array) => `${ip4At(f, 26)}:${u16(f, 34)}`;
  const dst = (f: Uint8Array) => `${ip4At(f, 30)}:${u16(f, 36)}`;
  assert.equal(
    outs.map((o) => o.verdict),
    [NEXT, NEXT, NEXT, NEXT, DROP],
    'three flows get the three ports; a fourth finds none free',
  );
  assert.equal(
    outs.slice(0, 4).map((o) => src(o.frame)),
    ['198.18.9.1:20000', '198.18.9.1:20000', '198.18.9.1:20001', '198.18.9.1:20002'],
  );
  assert.is(dst(outs[0]!.frame), '198.51.100.7:53', 'destination untouched');
  for (const o of outs.slice(0, 4)) {
    const c = checksumsOf(o.frame);
    assert.is(c.ip, 0, 'IPv4 header checksum');
    assert.is(c.l4, 0, 'UDP/TCP checksum over the new pseudo-header');
    assert.is(o.frame[22], 63, 'TTL decremented');
  }
  assert.equal(outs[0]!.frame.slice(42), out1.slice(42), 'payload untouched');

  assert.equal(
    backs.map((o) => o.verdict),
    [NEXT, DROP, DROP, DROP, DROP, NEXT, NEXT, DROP],
    'inbound: translated; from the inside port, another remote port, another remote host, an unmapped port, UDP to a TCP mapping: dropped',
  );
  assert.is(dst(backs[0]!.frame), '10.0.0.5:5555');
  assert.is(src(backs[0]!.frame), '198.51.100.7:53');
  assert.is(backs[0]!.frame[22], 29);
  assert.is(checksumsOf(backs[0]!.frame).ip, 0);
  assert.is(checksumsOf(backs[0]!.frame).l4, 0);
  assert.is(dst(backs[5]!.frame), '10.0.0.5:5555');
  assert.is(checksumsOf(backs[5]!.frame).l4Field, 0, 'UDP without a checksum keeps none');
  assert.is(checksumsOf(backs[5]!.frame).ip, 0);
  assert.is(dst(backs[6]!.frame), '10.0.0.6:40000', 'TCP reply translated back');
  assert.is(checksumsOf(backs[6]!.frame).l4, 0, 'TCP checksum');
  assert.equal(
    drops.map((o) => o.verdict),
    [DROP, DROP, DROP, DROP],
    'TTL 1, ICMP, IPv6, a later fragment',
  );
  assert.match(r.stderr, /^snat: 3 of 3 ports mapped\n$/);
});

test('snat: bad configuration stops the instance with one line naming the setting', async () => {
  const r = await run('snat', [], { SNAT_ADDR: 'nope', SNAT_PORTS: '1-2' });
  assert.is(r.code, 2);
  assert.is(r.stderr, "snat: SNAT_ADDR must be an IPv4 address, got 'nope'\n");
  const r2 = await run('snat', [], { SNAT_ADDR: '198.18.9.1', SNAT_PORTS: '30000-20000' });
  assert.is(r2.code, 2);
  assert.match(r2.stderr, /^snat: SNAT_PORTS must be a port range like 20000-29999, got '30000-20000'\n$/);
});

test('a handler that does not compile: E_PACKET_FUNCTION with the compiler diagnostics', async () => {
  const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-packet-bad-`));
  try {
    const src = join(dir, 'bad.c');
    writeFileSync(src, '#include <bpfctl/packet.h>\nvoid bpfctl_nf_batch(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned n)\n{\n\tpkts[0].nope = n;\n}\n');
    const err = await buildPacketFunction(src, { cacheDir }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof PacketFunctionBuildError, String(err));
    const e = err as PacketFunctionBuildError;
    assert.is(e.code, 'E_PACKET_FUNCTION');
    assert.match(e.message, /cannot compile packet function .*bad\.c/);
    assert.match(e.excerpt(), /bad\.c:4:\d+: .*nope/);
    const missing = await buildPacketFunction(join(dir, 'none.c'), { cacheDir }).catch((x: unknown) => x);
    assert.ok(missing instanceof PacketFunctionBuildError && /not found/.test(missing.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every example builds with the real runtime (nf_main.c), warning-free', async () => {
  for (const name of ['snat', 'count', 'macswap', 'vxlan_decap']) {
    const bin = await buildPacketFunction(join(ROOT, `examples/packet-nat/nf/${name}.c`), { cacheDir, extra: ['-Werror'] });
    assert.ok(bin.endsWith(`/${name}`));
  }
});

// --- the runtime on a real plane ---

let planeTool: BuiltC | undefined;
let pool: Pool | undefined;
let plane: PacketPlane;
const procs = new Set<ChildProcess>();
const FN_COUNT = 0;
const FN_MACSWAP = 1;

interface Instance {
  proc: ChildProcess;
  line: string;
  stderr: () => string;
  exit: Promise<number | null>;
}

/** A packet function instance with the real runtime; resolves once it said ready on fd 3. */
async function startInstance(name: string, fn: number, inst: number, poolPath: string, poll = false): Promise<Instance> {
  const bin = await buildPacketFunction(join(ROOT, `examples/packet-nat/nf/${name}.c`), { cacheDir });
  const proc = spawn(bin, [], {
    env: { ...process.env, BPFCTL_POOL: poolPath, BPFCTL_PKT_FN: String(fn), BPFCTL_PKT_INST: String(inst), BPFCTL_PKT_POLL: poll ? '1' : '0', BPFCTL_FN_NAME: name, BPFCTL_READY_FD: '3' },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
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
    (proc.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
      line += d.toString();
      if (line.endsWith('\n')) resolve({ proc, line: line.trim(), stderr: () => err, exit });
    });
    void exit.then((code) => reject(new Error(`exit ${code}: ${err}`)));
  });
}

const tool = () => {
  planeTool ??= buildC('packet-plane', ['test/c/packet_plane_test.c']);
  return planeTool.bin;
};
const inject = async (chain: number, n: number, flows: number) => {
  const r = await runC(tool(), ['inject', pool!.path, String(chain), String(n), String(flows)]);
  assert.is(r.code, 0, r.stderr);
  return lastJson<{ passed: number; noInstance: number; ringFull: number; other: number }>(r.stdout);
};
const drain = (n: number, ms: number) =>
  runC(tool(), ['drain', pool!.path, String(n), String(ms)]).then((r) => {
    assert.is(r.code, 0, r.stderr);
    return lastJson<{ got: number; port0: number; port1: number; swapped: number; disorder: number; stale: number; txFlag: number }>(r.stdout);
  });
const inst = (fn: number, i: number) => plane.snapshot().functions[fn]!.instances.find((x) => x.inst === i)!;
const chainStats = (c: number) => {
  const x = plane.snapshot().chains[c]!;
  return [x.in, x.out, x.dropped, x.lost];
};

let count0: Instance;
let count1: Instance;
let macswap0: Instance;

test('runtime: frames spread over instances by flow, each flow in order, through two functions and out; every buffer back', async () => {
  pool = Pool.create({ name: `test-${process.pid}-nfplane`, bufferSize: 2048, bufferCount: 2048, backing: 'shm', extSize: PacketPlane.sizeFor(2) });
  plane = PacketPlane.init(pool, {
    functions: [{ name: 'count' }, { name: 'macswap' }],
    chains: [
      { name: 'out', functions: [FN_COUNT], egress: { kind: 'tx', port: 1 }, poll: false },
      { name: 'reflect', functions: [FN_COUNT, FN_MACSWAP], egress: { kind: 'drop' }, poll: false },
      { name: 'sink', functions: [FN_COUNT], egress: { kind: 'drop' }, poll: false },
    ],
    ports: [
      { interface: 'p0', ifindex: 0 },
      { interface: 'p1', ifindex: 0 },
    ],
  });
  count0 = await startInstance('count', FN_COUNT, 0, pool.path);
  count1 = await startInstance('count', FN_COUNT, 1, pool.path);
  macswap0 = await startInstance('macswap', FN_MACSWAP, 0, pool.path);
  assert.match(count1.line, new RegExp(`^ready count 1 ${count1.proc.pid} ring=2 mode=event$`));
  plane.setLive(FN_COUNT, [0, 1]);
  plane.setLive(FN_MACSWAP, [0]);

  const drained = drain(900, 20_000);
  assert.equal(await inject(0, 600, 64), { passed: 600, noInstance: 0, ringFull: 0, other: 0 });
  assert.equal(await inject(1, 300, 16), { passed: 300, noInstance: 0, ringFull: 0, other: 0 });
  const d = await drained;
  assert.equal(d, { got: 900, port0: 300, port1: 600, swapped: 300, disorder: 0, stale: 0, txFlag: 900 }, 'chain out: to port 1; chain reflect: back to port 0, MACs swapped; flows in order');
  const c0 = inst(FN_COUNT, 0);
  const c1 = inst(FN_COUNT, 1);
  assert.is(c0.rx + c1.rx, 900n);
  assert.ok(c0.rx > 100n && c1.rx > 100n, `both instances got a share of the flows (${c0.rx}, ${c1.rx})`);
  assert.is(c0.passed + c1.passed, 900n);
  assert.is(c0.lost + c1.lost + c0.dropped + c1.dropped, 0n);
  assert.equal([inst(FN_MACSWAP, 0).rx, inst(FN_MACSWAP, 0).passed], [300n, 300n]);
  assert.equal(chainStats(0), [600n, 0n, 0n, 0n]);
  assert.equal(chainStats(1), [300n, 0n, 0n, 0n]);
  assert.is(pool.stats().inUse, 0, 'every buffer is back in the pool');
});

test('runtime: no live instance of the next function: frames are freed and counted lost', async () => {
  plane.setLive(FN_MACSWAP, []);
  assert.equal(await inject(1, 40, 4), { passed: 40, noInstance: 0, ringFull: 0, other: 0 });
  await new Promise((r) => setTimeout(r, 300));
  const lost = inst(FN_COUNT, 0).lost + inst(FN_COUNT, 1).lost;
  assert.is(lost, 40n, 'count could not hand them on');
  assert.equal(chainStats(1), [340n, 0n, 0n, 40n]);
  plane.setLive(FN_COUNT, []);
  assert.equal(await inject(0, 10, 2), { passed: 0, noInstance: 10, ringFull: 0, other: 0 }, 'the first function has none either');
  assert.equal(chainStats(0), [610n, 0n, 0n, 10n]);
  assert.is(pool!.stats().inUse, 0);
  plane.setLive(FN_COUNT, [0, 1]);
  plane.setLive(FN_MACSWAP, [0]);
});

test('runtime: a polling instance spins on its ring instead of sleeping, and still stops on SIGTERM', async () => {
  const poller = await startInstance('count', FN_COUNT, 2, pool!.path, true);
  assert.match(poller.line, /^ready count 2 \d+ ring=3 mode=poll$/);
  plane.setInstance(FN_COUNT, 2, poller.proc.pid!, 'live'); // as the supervisor would: the snapshot lists it from now on
  plane.setLive(FN_COUNT, [2]);
  assert.equal(await inject(2, 100, 4), { passed: 100, noInstance: 0, ringFull: 0, other: 0 });
  const end = Date.now() + 5000;
  while (inst(FN_COUNT, 2).rx < 100n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  assert.is(inst(FN_COUNT, 2).rx, 100n);
  assert.is(inst(FN_COUNT, 2).wakeups, 0n, 'never slept');
  plane.setLive(FN_COUNT, [0, 1]);
  poller.proc.kill('SIGTERM');
  assert.is(await poller.exit, 0, poller.stderr());
  assert.is(pool!.stats().inUse, 0);
});

test('runtime: a second consumer of one ring is refused; SIGTERM with frames queued drains them first', async () => {
  const dup = await startInstance('count', FN_COUNT, 1, pool!.path).catch((e: Error) => e.message);
  assert.match(String(dup), new RegExp(`^exit 2: count: ring 2 is consumed by pid ${count1.proc.pid}, which is alive\n$`));

  plane.setLive(FN_COUNT, [0]);
  const before = inst(FN_COUNT, 0).rx;
  count0.proc.kill('SIGSTOP');
  assert.equal(await inject(2, 200, 8), { passed: 200, noInstance: 0, ringFull: 0, other: 0 });
  assert.is(plane.snapshot().functions[FN_COUNT]!.instances.find((x) => x.inst === 0)!.queued, 200, 'queued in its ring');
  count0.proc.kill('SIGTERM');
  count0.proc.kill('SIGCONT');
  assert.is(await count0.exit, 0, count0.stderr());
  assert.is(inst(FN_COUNT, 0).rx - before, 200n, 'it handled what was queued before exiting');
  assert.equal(chainStats(2), [300n, 0n, 300n, 0n], 'and passed it on (the chain drops at its egress)');
  assert.match(count0.stderr(), /^count: udp \d+ frames \d+ bytes\n$/);
  assert.is(pool!.stats().inUse, 0);
  for (const i of [count1, macswap0]) {
    i.proc.kill('SIGTERM');
    assert.is(await i.exit, 0, i.stderr());
  }
});

test('runtime cost of one frame through one function, in one thread (printed, not asserted)', async () => {
  const b = Pool.create({ name: `test-${process.pid}-nfbench`, bufferSize: 2048, bufferCount: 256, backing: 'shm', extSize: PacketPlane.sizeFor(1) });
  try {
    const pl = PacketPlane.init(b, { functions: [{ name: 'f' }], chains: [{ name: 'c', functions: [0], egress: { kind: 'tx', port: 0 }, poll: false }], ports: [{ interface: 'p0', ifindex: 0 }] });
    pl.setLive(0, [0]);
    const r = await runC(tool(), ['bench', b.path, '100000']);
    assert.is(r.code, 0, r.stderr);
    const x = lastJson<{ frames: number; nsPerFrame: number }>(r.stdout);
    console.log(`  alloc + 2 ring hops (route, take) + free: ${x.nsPerFrame} ns per frame`);
    assert.is(b.stats().inUse, 0);
  } finally {
    b.close();
    Pool.remove(b.path);
  }
});

test('runtime: a pool without a packet plane is refused in one line', async () => {
  const bare = Pool.create({ name: `test-${process.pid}-noplane`, bufferSize: 2048, bufferCount: 16, backing: 'shm' });
  try {
    const r = await startInstance('count', 0, 0, bare.path).catch((e: Error) => e.message);
    assert.is(r, `exit 2: count: pool ${bare.path}: has no packet plane (created without packet chains)\n`);
  } finally {
    bare.close();
    Pool.remove(bare.path);
  }
});

test.after(() => {
  for (const p of procs) p.kill('SIGKILL');
  if (pool) {
    pool.close();
    Pool.remove(pool.path);
  }
  planeTool?.cleanup();
  rmSync(cacheDir, { recursive: true, force: true });
});

test.run();
