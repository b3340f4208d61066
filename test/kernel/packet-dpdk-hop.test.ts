/**
 * A DPDK program as a hop of a packet chain (examples/dpdk-pool/pkt_nf.c), run by `bpfctl run
 * --netns DUT` as a user runs it: the policy names the prebuilt program as a packet function
 * (`command`), the chain is DPDK forwarder -> C counter, real frames from a sender namespace are
 * captured byte for byte in a receiver namespace:
 *
 *   sender ns (sX) ──veth──► DUT ns (dIn: XDP + AF_XDP) ─ dpdkfwd ─ count ─► (dOut) ──veth──► receiver ns (rX)
 *
 * dpdkfwd wraps each pool frame in an mbuf without copying and forwards it as a router: MACs
 * rewritten, TTL / hop limit decremented with the IPv4 checksum updated, bad headers and expiring
 * TTLs dropped. What the receiver sees can only come from the DPDK process having written the pool
 * buffers themselves: pktio transmits from the buffer the descriptor names, nothing copies back.
 *
 * Checked: the rewrite byte for byte (IPv4 and IPv6), drops counted where they happen, status
 * counters, the pool's books, the DPDK instance killed with SIGKILL and restarted (frames flow
 * again), a busy-polling chain (the lcore pinned and spinning), and nothing left after Ctrl-C
 * (EAL's runtime directories included).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BPFCTL_BIN, ensureBuilt } from '../helpers/dist.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { checksum, eth, ipv4, ipv6, udp } from '../helpers/packets.ts';
import { sh } from '../helpers/sh.ts';
import { be16, capture, cli, createRig, isUdpTo, macText, NF_DIR, type Rig, type Running, send, sleep, startRun, sum, tearDown } from './packet-rig.ts';
import { hugeFree, hugetlbSupported, ROOT, skipped } from './pool-helpers.ts';

const ID = `bpfctl-test-${process.pid}-dpdkhop`;
const POLICY = `dph${process.pid % 100000}`;
const BAD_MAC = '02:00:00:00:0b:ad';
/** EAL runtime directories of this run's DPDK instances (pkt_nf.c: bpfctl-nf-<pool name>-<fn>-<inst>). */
const DPDK_RUN = '/var/run/dpdk';
const ourEalDirs = () => (existsSync(DPDK_RUN) ? readdirSync(DPDK_RUN).filter((d) => d.startsWith(`bpfctl-nf-${ID}`)) : []);
let rig: Rig;
let dir = '';
let before: Snapshot;
let run: Running | null = null;

function writePolicy(): string {
  const file = join(dir, 'policy.ts');
  const { ifs, mac } = rig;
  writeFileSync(
    file,
    `import { definePolicy, pass, toChain, xdpSection } from 'bpfctl';
export default definePolicy({
  name: '${POLICY}',
  pool: { bufferSize: 2048, bufferCount: 1024 },
  packetFunctions: {
    // The prebuilt DPDK program, relative to this file, as the README shows it.
    dpdkfwd: { command: ['./build/dpdk-pkt-nf', '--dst-mac', '${mac[ifs.rX]}', '--src-mac', '${mac[ifs.dOut]}'] },
    count: { handler: '${NF_DIR}/count.c' },
  },
  packetChains: {
    'dpdk-count': { functions: ['dpdkfwd', 'count'], egress: { tx: '${ifs.dOut}' } },
  },
  xdp: [
    xdpSection({
      interface: '${ifs.dIn}',
      rules: [
        toChain('dpdk-count', { srcMac: '${BAD_MAC}' }, { name: 'bad-frames' }),
        toChain('dpdk-count', { proto: 'udp', dport: 5000 }, { name: 'tenant' }),
        pass({}, { name: 'rest' }),
      ],
    }),
  ],
});
`,
  );
  return file;
}

/** The DPDK hop alone in a chain, as policy POLICY + suffix; with `poll` its instance spins (one core while it runs). */
function writeSoloPolicy(suffix: string, poll: boolean, extra: string[] = []): string {
  const file = join(dir, `${suffix}.ts`);
  const { ifs, mac } = rig;
  writeFileSync(
    file,
    `import { definePolicy, toChain, xdpSection } from 'bpfctl';
export default definePolicy({
  name: '${POLICY}${suffix}',
  pool: { bufferSize: 2048, bufferCount: 512 },
  packetFunctions: { dpdkfwd: { command: ${JSON.stringify(['./build/dpdk-pkt-nf', '--dst-mac', mac[ifs.rX], '--src-mac', mac[ifs.dOut], ...extra])} } },
  packetChains: { 'dpdk-solo': { functions: ['dpdkfwd'], egress: { tx: '${ifs.dOut}' }, poll: ${poll} } },
  xdp: [xdpSection({ interface: '${ifs.dIn}', rules: [toChain('dpdk-solo', { proto: 'udp', dport: 5000 })] })],
});
`,
  );
  return file;
}

const payload = (i: number) => Uint8Array.from(Buffer.from(`bpfctl dpdk hop ${String(i).padStart(4, '0')}`));
const IP6 = { s: 'fd00:18::1', r: 'fd00:19::1' };

function steered4(i: number, sport = 41000, ttl = 64): Uint8Array {
  return eth({ src: rig.mac[rig.ifs.sX]!, dst: rig.mac[rig.ifs.dIn]! }, ipv4({ src: rig.ip.s, dst: rig.ip.r, ttl }, udp({ sport, dport: 5000 }, payload(i))));
}

/** IPv6 (hop limit 64, what packets.ts writes). */
function steered6(i: number): Uint8Array {
  return eth({ src: rig.mac[rig.ifs.sX]!, dst: rig.mac[rig.ifs.dIn]! }, ipv6({ src: IP6.s, dst: IP6.r }, udp({ sport: 41006, dport: 5000 }, payload(600 + i))));
}

const isUdp6To = (f: Uint8Array, port: number) => f.length >= 62 && be16(f, 12) === 0x86dd && f[20] === 17 && be16(f, 56) === port;
const macBytes = (m: string) => m.split(':').map((x) => Number.parseInt(x, 16));

/** What dpdkfwd makes of a frame, computed here independently: MACs, TTL - 1, IPv4 checksum from scratch. */
function expected(sent: Uint8Array): Uint8Array {
  const f = Uint8Array.from(sent);
  f.set(macBytes(rig.mac[rig.ifs.rX]!), 0);
  f.set(macBytes(rig.mac[rig.ifs.dOut]!), 6);
  if (be16(f, 12) === 0x0800) {
    f[22] = f[22]! - 1;
    f[24] = 0;
    f[25] = 0;
    const c = checksum(f.subarray(14, 34));
    f[24] = c >> 8;
    f[25] = c & 0xff;
  } else f[21] = f[21]! - 1; // IPv6 hop limit
  return f;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface PacketStatus {
  ports: { interface: string; rx: number; tx: number; posted: number; bound: boolean }[];
  chains: { name: string; in: number; out: number; dropped: number; lost: number }[];
  pool: { inUse: number; bufferCount: number };
  functions: { name: string; live: number[]; instances: { inst: number; pid: number; state: string; rx: number; passed: number; dropped: number; lost: number; reclaimed: number }[] }[];
}
interface Proc {
  kind: string;
  name: string;
  instance: number;
  pid: number;
  restarts: number;
  state: string;
}

function status(policy = POLICY): { packet: PacketStatus; processes: Proc[] } {
  const r = cli(rig, ['status', policy, '--json']);
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}
const fnTotals = (st: PacketStatus, name: string) => {
  const is = st.functions.find((f) => f.name === name)!.instances;
  return { rx: sum(is.map((i) => i.rx)), passed: sum(is.map((i) => i.passed)), dropped: sum(is.map((i) => i.dropped)), lost: sum(is.map((i) => i.lost)) };
};
const dpdkProc = (st: { processes: Proc[] }) => st.processes.find((p) => p.kind === 'packet' && p.name === 'dpdkfwd')!;
/** The JSON lines dpdkfwd wrote on stderr ("dpdkfwd: {...}"), forwarded by the supervisor. */
const dpdkLines = () =>
  run!.stderr
    .split('\n')
    .map((l) => /^dpdkfwd: (\{.*\})$/.exec(l)?.[1])
    .filter((j): j is string => !!j)
    .map((j) => JSON.parse(j) as Record<string, unknown>);
const settle = () => sleep(300);

/** Sends `frames`, returns the steered ones the receiver got (UDP to 5000, IPv4 or IPv6), in order. */
async function through(frames: Uint8Array[], ms = 2000): Promise<Uint8Array[]> {
  const got = await capture(rig.ns.r, rig.ifs.rX, ms, () => send(rig.ns.s, rig.ifs.sX, frames));
  return got.filter((f) => isUdpTo(f, 5000) || isUdp6To(f, 5000));
}

test.before(() => {
  ensureBuilt();
  before = snapshot();
  dir = mkdtempSync(join(tmpdir(), `${ID}-`));
  // Built as a user would, next to the policy that names it ('./build/dpdk-pkt-nf').
  execFileSync('make', ['-s', '-C', join(ROOT, 'examples/dpdk-pool'), `OUT=${join(dir, 'build')}`, `${join(dir, 'build')}/dpdk-pkt-nf`], { stdio: ['ignore', 'pipe', 'pipe'] });
  rig = createRig(ID, `bt${process.pid % 100000}`, 79);
});

test.after(async () => {
  await tearDown(rig, run, dir);
  for (const d of ourEalDirs()) rmSync(join(DPDK_RUN, d), { recursive: true, force: true });
});

test('a DPDK hop whose EAL refuses its options: bpfctl run fails naming it, and leaves nothing running', async () => {
  const r = cli(rig, ['run', writeSoloPolicy('bad', false, ['--', '--no-such-eal-option']), '--netns', rig.ns.d, '--pool', `${ID}bad`, '--json']);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /dpdkfwd: rte_eal_init \(.*--no-such-eal-option\): /, r.stderr);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  assert.not.ok(existsSync(`/dev/shm/bpfctl-pool-${ID}bad`), 'pool removed');
  assert.equal(ourEalDirs(), [], "the failed instance removed EAL's directory");
});

test('bpfctl run starts the DPDK hop: EAL without huge pages, the pool registered, mbufs on pool frames', async () => {
  run = await startRun(rig, [writePolicy(), '--netns', rig.ns.d, '--pool', ID]);
  const started = run.started as { packet: { chains: string[] } };
  assert.equal(started.packet.chains, ['dpdk-count']);
  const st = status();
  assert.ok(st.packet.ports.every((p) => p.bound));
  const dpdk = dpdkProc(st);
  assert.is(dpdk.state, 'ready');
  assert.equal(st.processes.filter((p) => p.kind === 'packet').map((p) => p.name).sort(), ['count', 'dpdkfwd']);
  // The process the supervisor runs is the DPDK program itself (nothing in between).
  assert.match(sh('readlink', [`/proc/${dpdk.pid}/exe`]).trim(), /\/build\/dpdk-pkt-nf$/);
  const [start] = dpdkLines();
  assert.ok(start, `dpdkfwd's start line on stderr:\n${run.stderr}`);
  const onShm = existsSync(`/dev/shm/bpfctl-pool-${ID}`);
  if (onShm) {
    assert.is(start.hugepages, false, 'no huge pages for a pool on /dev/shm');
    assert.match(String(start.eal), /--no-huge --no-shconf/);
  }
  assert.match(String(start.eal), new RegExp(`--file-prefix=bpfctl-nf-${ID}-0-0 `));
  assert.match(String(start.eal), /--lcores=0@\(/, 'event mode: one lcore, not pinned');
  assert.is(start.extmem, true, 'rte_extmem_register accepted the pool mapping');
  assert.is(start.zeroCopy, true, "an mbuf's data pointer is the pool frame");
  assert.is(start.mode, 'event');
  assert.is(start.macs, 'set');
});

test('the DPDK hop rewrites frames in place: MACs, TTL and IPv4 checksum byte for byte, IPv6 hop limit', async () => {
  const N = 20;
  const frames = [...Array.from({ length: N }, (_, i) => steered4(i)), steered6(0), steered6(1)];
  const out = await through(frames, 2500);
  assert.is(out.length, frames.length, `${frames.length} frames out of the chain`);
  out.forEach((f, i) => {
    const want = expected(frames[i]!);
    assert.is(macText(f, 0), rig.mac[rig.ifs.rX], 'destination MAC: --dst-mac');
    assert.is(macText(f, 6), rig.mac[rig.ifs.dOut], 'source MAC: --src-mac');
    if (i < N) {
      assert.is(f[22], 63, 'TTL decremented');
      assert.is(checksum(f.subarray(14, 34)), 0, 'IPv4 header checksum valid after the incremental update');
      const udpLen = be16(f, 38);
      const pseudo = Uint8Array.from([...f.subarray(26, 34), 0, 17, udpLen >> 8, udpLen & 0xff]);
      assert.is(checksum(pseudo, f.subarray(34, 34 + udpLen)), 0, 'UDP checksum still valid');
    } else assert.is(f[21], 63, 'IPv6 hop limit decremented');
    // And nothing else changed: the whole frame, byte for byte, in the order sent.
    assert.is(hex(f), hex(want));
  });
  await settle();
  const st = status();
  const chain = st.packet.chains.find((c) => c.name === 'dpdk-count')!;
  assert.equal([chain.in, chain.out, chain.dropped, chain.lost], [frames.length, frames.length, 0, 0]);
  assert.equal(fnTotals(st.packet, 'dpdkfwd'), { rx: frames.length, passed: frames.length, dropped: 0, lost: 0 });
  assert.equal(fnTotals(st.packet, 'count'), { rx: frames.length, passed: frames.length, dropped: 0, lost: 0 });
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)), 'every buffer not posted to the kernel is back in the pool');
});

test('the DPDK hop drops a bad IPv4 header and an expiring TTL, counted as its own drops', async () => {
  const st0 = status();
  const src = { src: BAD_MAC, dst: rig.mac[rig.ifs.dIn]! };
  const badSum = eth(src, ipv4({ src: rig.ip.s, dst: rig.ip.r }, udp({ sport: 1, dport: 2 }, payload(1))));
  badSum[24] = badSum[24]! ^ 0x5a; // header checksum wrong
  const hopLimit1 = eth(src, ipv6({ src: IP6.s, dst: IP6.r }, udp({ sport: 5, dport: 6 }, payload(3))));
  hopLimit1[21] = 1; // expires here too (not part of the UDP checksum)
  const bad = [
    badSum,
    eth(src, ipv4({ src: rig.ip.s, dst: rig.ip.r, ttl: 1 }, udp({ sport: 3, dport: 4 }, payload(2)))), // TTL expires here
    hopLimit1,
  ];
  const got = await capture(rig.ns.r, rig.ifs.rX, 1500, () => send(rig.ns.s, rig.ifs.sX, bad));
  // Only the DUT kernel's own IPv6 neighbour/MLD chatter may reach the receiver.
  assert.equal(
    got.filter((f) => be16(f, 12) !== 0x86dd || f[20] !== 58).map(hex),
    [],
    'nothing from the chain reached the receiver',
  );
  await settle();
  const st = status();
  const c0 = st0.packet.chains[0]!;
  const c = st.packet.chains[0]!;
  assert.equal([c.in - c0.in, c.out - c0.out, c.dropped - c0.dropped], [bad.length, 0, bad.length]);
  const d0 = fnTotals(st0.packet, 'dpdkfwd');
  const d = fnTotals(st.packet, 'dpdkfwd');
  assert.equal([d.rx - d0.rx, d.dropped - d0.dropped, d.passed - d0.passed], [bad.length, bad.length, 0], 'dropped by dpdkfwd');
  assert.is(fnTotals(st.packet, 'count').rx, fnTotals(st0.packet, 'count').rx, 'count never saw them');
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)));
});

test('the DPDK instance killed with SIGKILL is restarted on its ring, and frames flow again', async () => {
  const st0 = status();
  const old = dpdkProc(st0);
  assert.equal(ourEalDirs(), [`bpfctl-nf-${ID}-0-0`], "EAL's runtime directory while it runs");
  process.kill(old.pid, 'SIGKILL');
  let now = old;
  for (let i = 0; i < 100 && (now.pid === old.pid || now.state !== 'ready'); i++) {
    await sleep(100);
    now = dpdkProc(status());
  }
  assert.is.not(now.pid, old.pid, 'a new dpdkfwd process');
  assert.is(now.state, 'ready');
  assert.is(now.restarts, old.restarts + 1);
  // The replacement reused its predecessor's file prefix: still one directory, not two.
  assert.equal(ourEalDirs(), [`bpfctl-nf-${ID}-0-0`]);
  // Its stderr reaches this process through the supervisor's: give the pipes a moment.
  const starts = () => dpdkLines().filter((l) => 'zeroCopy' in l);
  for (let i = 0; i < 20 && starts().length < 2; i++) await sleep(100);
  assert.is(starts().length, 2, 'the new instance reported its start');
  assert.equal(starts()[1], starts()[0], 'the same EAL arguments and memory set-up as the first');
  const frames = Array.from({ length: 10 }, (_, i) => steered4(100 + i, 42000));
  const out = await through(frames);
  assert.equal(out.map(hex), frames.map((f) => hex(expected(f))), 'rewritten by the restarted instance, byte for byte');
  await settle();
  const st = status();
  const c0 = st0.packet.chains[0]!;
  const c = st.packet.chains[0]!;
  assert.equal([c.in - c0.in, c.out - c0.out], [frames.length, frames.length]);
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)), 'no buffer lost to the kill');
});

test('Ctrl-C: the DPDK instance drains and exits 0, EAL cleaned up, the policy gone', async () => {
  run!.child.kill('SIGINT');
  assert.is(await run!.exited, 0, run!.stderr);
  // The restarted instance's tally: the 10 frames it forwarded after the kill.
  const tally = dpdkLines().filter((l) => 'frames' in l);
  assert.equal(tally.at(-1), { frames: 10, forwarded: 10, ttlExpired: 0, badHeader: 0, nonIp: 0, notInPlace: 0 }, run!.stderr);
  assert.equal(ourEalDirs(), [], "EAL's runtime directory removed on exit");
  assert.not.ok(existsSync(join(rig.env.BPFCTL_BPFFS!, POLICY)), 'pins');
  assert.not.ok(existsSync(`/dev/shm/bpfctl-pool-${ID}`), 'pool file');
  assert.is(sh('ip', ['netns', 'exec', rig.ns.d, 'ss', '--xdp', '-a', '-n']).split('\n').filter((l) => /\d/.test(l)).length, 0, 'no AF_XDP socket');
  const link = JSON.parse(sh('ip', ['-n', rig.ns.d, '-j', 'link', 'show', 'dev', rig.ifs.dIn]))[0];
  assert.not.ok(link.xdp, 'no XDP program on the ingress port');
});

test('busy-poll chain: the DPDK lcore is pinned to one CPU, spins, and forwards the same way', async () => {
  run = await startRun(rig, [writeSoloPolicy('p', true), '--netns', rig.ns.d, '--pool', `${ID}p`]);
  const [start] = dpdkLines();
  assert.ok(start, run.stderr);
  assert.is(start.mode, 'poll');
  assert.match(String(start.eal), /--lcores=0@\d+( |$)/, 'poll mode: the lcore pinned to one CPU');
  const pid = dpdkProc(status(`${POLICY}p`)).pid;
  // Spinning, not sleeping: it burns CPU with no traffic at all.
  const cpu = () => sh('cat', [`/proc/${pid}/stat`]).split(') ')[1]!.split(' ').slice(11, 13).map(Number).reduce((a, b) => a + b, 0);
  const t0 = cpu();
  await sleep(500);
  assert.ok(cpu() - t0 >= 10, `busy-polling (${cpu() - t0} ticks in 0.5 s)`);
  const frames = Array.from({ length: 10 }, (_, i) => steered4(200 + i, 43000));
  const out = await through(frames, 1500);
  assert.equal(out.map(hex), frames.map((f) => hex(expected(f))));
  run.child.kill('SIGINT');
  assert.is(await run.exited, 0, run.stderr);
  assert.equal(
    dpdkLines().find((l) => 'frames' in l),
    { frames: 10, forwarded: 10, ttlExpired: 0, badHeader: 0, nonIp: 0, notInPlace: 0 },
  );
  assert.equal(ourEalDirs(), []);
});

/**
 * `bpfctl run ARGS --json` in a mount namespace of its own with a hugetlbfs mounted on
 * /dev/hugepages: its pool goes there (a pool prefers hugetlbfs), while concurrent runs on this
 * machine, which would put their pools on a shared mount too and keep it busy, never see it. The
 * mount goes away with the namespace's last process.
 */
function startRunOnHugetlbfs(args: string[]): Promise<Running> {
  const inner = 'mkdir -p /dev/hugepages && mount -t hugetlbfs none /dev/hugepages && exec "$0" "$@"';
  const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', inner, process.execPath, BPFCTL_BIN, 'run', ...args, '--json'], { env: rig.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const r: Running = { child, stdout: '', stderr: '', exited: new Promise((res) => child.once('exit', (c) => res(c))), started: {} };
  child.stdout!.setEncoding('utf8').on('data', (t: string) => {
    r.stdout += t;
  });
  child.stderr!.setEncoding('utf8').on('data', (t: string) => {
    r.stderr += t;
  });
  return (async () => {
    for (const deadline = Date.now() + 90_000; !r.stdout.includes('\n'); await sleep(100)) {
      if (child.exitCode !== null) throw new Error(`bpfctl run exited ${child.exitCode}:\n${r.stderr}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`bpfctl run did not start:\n${r.stderr}`);
      }
    }
    r.started = JSON.parse(r.stdout.split('\n')[0]!);
    return r;
  })();
}

/** `fn` with `pages` more 2 MiB huge pages in the kernel's pool; false (not run) without hugetlb support. */
async function withMoreHugepages(pages: number, fn: () => Promise<void>): Promise<boolean> {
  const NR = '/proc/sys/vm/nr_hugepages';
  if (!hugetlbSupported()) return false;
  const saved = readFileSync(NR, 'utf8').trim();
  const free0 = hugeFree();
  try {
    for (let i = 0; i < 3 && hugeFree() < free0 + pages; i++) {
      if (i) writeFileSync('/proc/sys/vm/compact_memory', '1');
      writeFileSync(NR, String(Number(saved) + pages));
    }
    if (hugeFree() < free0 + pages) throw new Error(`the kernel gave ${hugeFree() - free0} of ${pages} huge pages, even after compacting memory`);
    await fn();
    const held = free0 + pages - hugeFree();
    if (held > 0) throw new Error(`${held} huge pages still held after the run`);
    return true;
  } finally {
    writeFileSync(NR, saved);
  }
}

test('a pool on hugetlbfs: EAL runs on huge pages (--in-memory) and the hop works the same', async () => {
  // 2-3 pages for the pool, the rest for EAL's heap (allocated on demand).
  const ran = await withMoreHugepages(16, async () => {
    run = await startRunOnHugetlbfs([writeSoloPolicy('h', false), '--netns', rig.ns.d, '--pool', `${ID}h`]);
    try {
      const [start] = dpdkLines();
      assert.ok(start, run.stderr);
      assert.is(start.pool, `/dev/hugepages/bpfctl-pool-${ID}h`, 'the pool is on hugetlbfs');
      assert.is(start.hugepages, true);
      assert.match(String(start.eal), /--in-memory/);
      assert.not.match(String(start.eal), /--no-huge/);
      assert.is(start.extmem, true, 'the hugetlbfs mapping registered with 2 MiB pages');
      assert.is(start.zeroCopy, true);
      const frames = Array.from({ length: 10 }, (_, i) => steered4(300 + i, 44000));
      const out = await through(frames, 1500);
      assert.equal(out.map(hex), frames.map((f) => hex(expected(f))));
    } finally {
      run.child.kill('SIGINT');
      assert.is(await run.exited, 0, run.stderr);
    }
    assert.equal(ourEalDirs(), []);
  });
  if (!ran) skipped('no hugetlb support (/proc/sys/vm/nr_hugepages missing): the DPDK hop on huge pages not tested');
});

test('nothing left: namespaces, pools, pins, processes, EAL directories', async () => {
  rig.destroy();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(ourEalDirs(), []);
  for (const ns of Object.values(rig.ns)) assert.not.ok(existsSync(`/run/netns/${ns}`), `netns ${ns}`);
  assert.equal(withoutOthersNetns(await leaksSince(before, { ownDirs: [rig.env.BPFCTL_BPFFS!, rig.env.BPFCTL_RUN_DIR!] })), []);
});

/**
 * The leak check's netns line without other runs' rigs: packet-chain tests and benchmarks name
 * theirs bp<n>… / bpk…, which the checker cannot tell apart from ours (it knows bt<pid>…). This
 * file's own are bt<pid % 100000>…, checked by name above and still reported below.
 */
function withoutOthersNetns(leaks: string[]): string[] {
  const PREFIX = 'network namespaces left: ';
  return leaks.flatMap((l) => {
    if (!l.startsWith(PREFIX)) return [l];
    const left = l.slice(PREFIX.length).split(', ').filter((n) => !/^bp/.test(n));
    return left.length ? [`${PREFIX}${left.join(', ')}`] : [];
  });
}

test.run();
