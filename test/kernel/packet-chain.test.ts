/**
 * Packet chains as a user runs them (docs/packet-chains.md): `bpfctl run --netns DUT` of a policy
 * whose XDP classifier steers UDP port 5000 into a chain of two C network functions (source NAT,
 * counter) that transmits on another interface. Real frames from a sender namespace, captured
 * byte for byte in a receiver namespace:
 *
 *   sender ns (sX) ──veth──► DUT ns (dIn: XDP + AF_XDP) ─ nat ─ count ─► (dOut) ──veth──► receiver ns (rX)
 *
 * Checked: rewritten addresses, ports, TTL and both checksums; flows not steered take the kernel
 * path; bad frames are dropped and counted; a function killed under load is restarted and no
 * buffer is lost; scaling live; status and top counters; nothing left after Ctrl-C.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureBuilt } from '../helpers/dist.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { checksum, eth, ipv4, truncate, udp } from '../helpers/packets.ts';
import { sh } from '../helpers/sh.ts';
import { be16, capture, cli, createRig, flood, ipText, isUdpTo, macText, NF_DIR, type Rig, type Running, send, sleep, startRun, sum, tearDown } from './packet-rig.ts';

const ID = `bpfctl-test-${process.pid}-pkt`;
const POLICY = `pkt${process.pid % 100000}`;
const BAD_MAC = '02:00:00:00:0b:ad';
let rig: Rig;
let dir = '';
let before: Snapshot;
let run: Running | null = null;
const NAT_ADDR = () => rig.ip.dOut;

function writePolicy(tenantPort = 5000): string {
  const file = join(dir, 'policy.ts');
  const { ifs, mac } = rig;
  writeFileSync(
    file,
    `import { definePolicy, pass, toChain, xdpSection } from 'bpfctl';
export default definePolicy({
  name: '${POLICY}',
  pool: { bufferSize: 2048, bufferCount: 1024 },
  packetFunctions: {
    nat: { handler: '${NF_DIR}/snat.c', env: { SNAT_ADDR: '${NAT_ADDR()}', SNAT_PORTS: '20000-20999', SNAT_SRC_MAC: '${mac[ifs.dOut]}', SNAT_DST_MAC: '${mac[ifs.rX]}' } },
    count: { handler: '${NF_DIR}/count.c' },
  },
  packetChains: {
    'nat-count': { functions: ['nat', 'count'], egress: { tx: '${ifs.dOut}' } },
  },
  xdp: [
    xdpSection({
      interface: '${ifs.dIn}',
      rules: [
        toChain('nat-count', { srcMac: '${BAD_MAC}' }, { name: 'bad-frames' }),
        toChain('nat-count', { proto: 'udp', dport: ${tenantPort} }, { name: 'tenant' }),
        pass({}, { name: 'rest' }),
      ],
    }),
  ],
});
`,
  );
  return file;
}

const payload = (i: number) => Uint8Array.from(Buffer.from(`bpfctl packet ${String(i).padStart(4, '0')}`));

function steered(i: number, sport = 41000): Uint8Array {
  return eth({ src: rig.mac[rig.ifs.sX]!, dst: rig.mac[rig.ifs.dIn]! }, ipv4({ src: rig.ip.s, dst: rig.ip.r, ttl: 64 }, udp({ sport, dport: 5000 }, payload(i))));
}

interface PacketStatus {
  ports: { interface: string; rx: number; tx: number; posted: number; bound: boolean; zeroCopy: boolean; noChain: number }[];
  chains: { name: string; in: number; out: number; dropped: number; lost: number }[];
  pool: { inUse: number; bufferCount: number };
  functions: { name: string; live: number[]; instances: { inst: number; pid: number; state: string; rx: number; passed: number; dropped: number; lost: number; reclaimed: number; queued: number }[] }[];
}

function packetStatus(): { packet: PacketStatus; processes: { kind: string; name: string; instance: number; pid: number; restarts: number; state: string }[] } {
  const r = cli(rig, ['status', POLICY, '--json']);
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const settle = () => sleep(300);

function xdpMalformed(): number {
  const r = cli(rig, ['xdp', 'status', POLICY, '--json']);
  assert.is(r.status, 0, r.stderr);
  return Number(JSON.parse(r.stdout)[0].malformed.packets);
}

test.before(() => {
  ensureBuilt();
  before = snapshot();
  dir = mkdtempSync(join(tmpdir(), `${ID}-`));
  rig = createRig(ID, `bp${process.pid % 10000}`, 77);
});

test.after(() => tearDown(rig, run, dir));

test('bpfctl run --netns binds AF_XDP on both ports (copy mode on veth) and reports it', async () => {
  run = await startRun(rig, [writePolicy(), '--netns', rig.ns.d, '--pool', ID]);
  const started = run.started as { packet: { chains: string[]; ports: { interface: string; zeroCopy: boolean }[] } };
  assert.equal(started.packet.chains, ['nat-count']);
  assert.equal(
    started.packet.ports.map((p) => [p.interface, p.zeroCopy]),
    [
      [rig.ifs.dIn, false],
      [rig.ifs.dOut, false],
    ],
  );
  const st = packetStatus();
  assert.ok(st.packet.ports.every((p) => p.bound));
  assert.ok(st.processes.some((p) => p.kind === 'pktio'));
  assert.equal(st.processes.filter((p) => p.kind === 'packet').map((p) => p.name).sort(), ['count', 'nat']);
});

test('steered frames arrive NATed byte for byte; unsteered ones take the kernel path', async () => {
  const N = 20;
  const frames = Array.from({ length: N }, (_, i) => steered(i));
  let answered: Uint8Array[] = [];
  const got = await capture(rig.ns.r, rig.ifs.rX, 2500, async () => {
    // Not steered: UDP to the DUT's own address on another port. The kernel answers it (ICMP
    // port unreachable), which only the kernel path can do.
    answered = await capture(rig.ns.s, rig.ifs.sX, 1500, () => send(rig.ns.s, rig.ifs.sX, [eth({ src: rig.mac[rig.ifs.sX]!, dst: rig.mac[rig.ifs.dIn]! }, ipv4({ src: rig.ip.s, dst: rig.ip.dIn }, udp({ sport: 41001, dport: 6000 }, payload(999))))]));
    send(rig.ns.s, rig.ifs.sX, frames);
  });
  assert.ok(
    answered.some((f) => be16(f, 12) === 0x0800 && f[23] === 1 && f[34] === 3 && f[35] === 3),
    'ICMP port unreachable from the DUT kernel for the flow not steered',
  );
  const out = got.filter((f) => isUdpTo(f, 5000));
  assert.is(out.length, N, `${N} frames out of the chain (captured ${got.length} frames)`);
  const sports = new Set<number>();
  out.forEach((f, i) => {
    const sent = frames[i]!;
    assert.is(macText(f, 0), rig.mac[rig.ifs.rX], 'destination MAC: the next hop');
    assert.is(macText(f, 6), rig.mac[rig.ifs.dOut], 'source MAC: the egress port');
    assert.is(ipText(f, 26), NAT_ADDR(), 'source address translated');
    assert.is(ipText(f, 30), rig.ip.r, 'destination address kept');
    assert.is(f[22], 63, 'TTL decremented');
    assert.is(checksum(f.subarray(14, 34)), 0, 'IPv4 header checksum valid');
    const sport = be16(f, 34);
    assert.ok(sport >= 20000 && sport <= 20999, `source port ${sport} from the NAT range`);
    sports.add(sport);
    const udpLen = be16(f, 38);
    const pseudo = Uint8Array.from([...f.subarray(26, 34), 0, 17, udpLen >> 8, udpLen & 0xff]);
    assert.is(checksum(pseudo, f.subarray(34, 34 + udpLen)), 0, 'UDP checksum valid after the rewrite');
    assert.equal([...f.subarray(42, 42 + payload(i).length)], [...payload(i)], 'payload untouched, in order');
    // Everything else in the frame is what was sent.
    assert.equal([...f.subarray(12, 22)], [...sent.subarray(12, 22)]);
  });
  assert.is(sports.size, 1, 'one flow, one mapping');
  await settle();
  const st = packetStatus();
  const chain = st.packet.chains.find((c) => c.name === 'nat-count')!;
  assert.is(chain.in, N);
  assert.is(chain.out, N);
  const fn = (name: string) => st.packet.functions.find((f) => f.name === name)!;
  assert.is(sum(fn('nat').instances.map((i) => i.rx)), N);
  assert.is(sum(fn('count').instances.map((i) => i.passed)), N);
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)), 'every buffer not posted to the kernel is back in the pool');
});

test('bad frames steered into the chain are dropped and counted, none leaves', async () => {
  const base = packetStatus().packet.chains[0]!;
  const src = { src: BAD_MAC, dst: rig.mac[rig.ifs.dIn]! };
  const truncated = truncate(eth(src, ipv4({ src: rig.ip.s, dst: rig.ip.r }, udp({ sport: 1, dport: 2 }))), 24); // IPv4 header cut short
  const bad = [
    eth({ ...src, type: 0x88b5 }, new Uint8Array(46)), // not IP
    eth(src, ipv4({ src: rig.ip.s, dst: rig.ip.r, proto: 17, fragOffset: 100 }, new Uint8Array(40))), // a later fragment: no ports to map
    eth(src, ipv4({ src: rig.ip.s, dst: rig.ip.r, ttl: 1 }, udp({ sport: 3, dport: 4 }, payload(1)))), // TTL expires here
  ];
  const malformed0 = xdpMalformed();
  const got = await capture(rig.ns.r, rig.ifs.rX, 1500, () => send(rig.ns.s, rig.ifs.sX, [truncated, ...bad]));
  // What the receiver may see otherwise is the DUT kernel's own IPv6 neighbour/MLD chatter.
  assert.equal(
    got.filter((f) => be16(f, 12) !== 0x86dd).map((f) => Buffer.from(f).toString('hex')),
    [],
    'nothing from the chain reached the receiver',
  );
  await settle();
  const now = packetStatus().packet.chains[0]!;
  assert.is(now.in - base.in, bad.length, 'all of them entered the chain');
  assert.is(now.out - base.out, 0);
  assert.is(now.dropped - base.dropped, bad.length, 'and each was dropped and counted');
  // The truncated one never got that far: the classifier counts and drops a malformed frame
  // before any rule sees it.
  assert.is(xdpMalformed() - malformed0, 1, 'the truncated frame: malformed at XDP');
});

test('a function killed under load is restarted; no buffer is lost and the books balance', async () => {
  const st0 = packetStatus();
  const nat = st0.processes.find((p) => p.kind === 'packet' && p.name === 'nat')!;
  const flooding = flood(rig.ns.s, rig.ifs.sX, 3, 3000, steered(7, 42000));
  await sleep(1000);
  process.kill(nat.pid, 'SIGKILL');
  const sent = await flooding;
  await sleep(1000);
  const st = packetStatus();
  const natNow = st.processes.find((p) => p.kind === 'packet' && p.name === 'nat')!;
  assert.is.not(natNow.pid, nat.pid, 'a new nat process');
  assert.is(natNow.restarts, 1);
  assert.is(natNow.state, 'ready');
  const c0 = st0.packet.chains[0]!;
  const c = st.packet.chains[0]!;
  const reclaimed = sum(st.packet.functions.flatMap((f) => f.instances.map((i) => i.reclaimed)));
  const entered = c.in - c0.in;
  assert.ok(entered > 1000, `frames entered the chain (${entered} of ${sent} sent)`);
  assert.ok(c.out - c0.out > entered / 2, `most came out (${c.out - c0.out} of ${entered})`);
  assert.is(entered, c.out - c0.out + (c.dropped - c0.dropped) + (c.lost - c0.lost) + reclaimed, 'every frame is transmitted, dropped, lost or reclaimed: none vanished');
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)), 'no buffer lost');
  // And the restarted instance works.
  const got = await capture(rig.ns.r, rig.ifs.rX, 1200, () => send(rig.ns.s, rig.ifs.sX, [steered(1), steered(2)]));
  assert.is(got.filter((f) => isUdpTo(f, 5000)).length, 2);
});

test('pktio killed: restarted, its buffers reclaimed, sockets bound again, frames flow', async () => {
  const st0 = packetStatus();
  const pktio = st0.processes.find((p) => p.kind === 'pktio')!;
  process.kill(pktio.pid, 'SIGKILL');
  let st = st0;
  for (let i = 0; i < 50; i++) {
    await sleep(200);
    st = packetStatus();
    const now = st.processes.find((p) => p.kind === 'pktio')!;
    if (now.pid !== pktio.pid && now.state === 'ready') break;
  }
  const now = st.processes.find((p) => p.kind === 'pktio')!;
  assert.is.not(now.pid, pktio.pid);
  assert.is(now.state, 'ready', JSON.stringify(now));
  assert.ok(st.packet.ports.every((p) => p.bound));
  const got = await capture(rig.ns.r, rig.ifs.rX, 1500, () => send(rig.ns.s, rig.ifs.sX, [steered(11), steered(12), steered(13)]));
  assert.is(got.filter((f) => isUdpTo(f, 5000)).length, 3);
  await settle();
  st = packetStatus();
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)), 'the dead pktio\'s fill-ring buffers came back to the pool');
});

test('scale a packet function live: flows spread over the instances, scaling down loses nothing', async () => {
  const up = cli(rig, ['scale', POLICY, 'count', '3', '--json']);
  assert.is(up.status, 0, up.stderr);
  const st0 = packetStatus();
  assert.equal(st0.packet.functions.find((f) => f.name === 'count')!.live, [0, 1, 2]);
  // The running count is what diff compares the file with.
  const d = JSON.parse(cli(rig, ['diff', writePolicy(), '--json']).stdout);
  assert.equal(d.changes, [{ kind: 'packet-function-scaled', action: 'live', name: 'count', from: 3, to: 1 }]);
  const frames = Array.from({ length: 60 }, (_, i) => steered(i, 43000 + i));
  const got = await capture(rig.ns.r, rig.ifs.rX, 2500, () => send(rig.ns.s, rig.ifs.sX, frames, 1));
  assert.is(got.filter((f) => isUdpTo(f, 5000)).length, 60);
  await settle();
  const count = packetStatus().packet.functions.find((f) => f.name === 'count')!;
  const busy = count.instances.filter((i) => i.rx > (st0.packet.functions.find((f) => f.name === 'count')!.instances.find((x) => x.inst === i.inst)?.rx ?? 0));
  assert.ok(busy.length >= 2, `60 flows hashed over 3 instances reached at least 2 (${busy.map((i) => i.inst)})`);
  const down = cli(rig, ['scale', POLICY, 'count', '1', '--json']);
  assert.is(down.status, 0, down.stderr);
  const after = await capture(rig.ns.r, rig.ifs.rX, 1500, () => send(rig.ns.s, rig.ifs.sX, frames.slice(0, 10), 1));
  assert.is(after.filter((f) => isUdpTo(f, 5000)).length, 10, 'after scaling down every frame still comes out');
  const st = packetStatus();
  assert.equal(st.packet.functions.find((f) => f.name === 'count')!.live, [0]);
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)));
});

test('apply steers another flow into the chain live: pktio keeps its sockets, frames in flight complete', async () => {
  const st0 = packetStatus();
  const pktio = st0.processes.find((p) => p.kind === 'pktio')!;
  const c0 = st0.packet.chains[0]!;
  // Frames keep coming on the old flow while the classifier is swapped under them.
  const flooding = flood(rig.ns.s, rig.ifs.sX, 2, 1000, steered(3, 44000));
  await sleep(500);
  const r = cli(rig, ['apply', writePolicy(5001), '--json']);
  assert.is(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.is(res.result, 'applied to the running chain');
  assert.ok(
    res.diff.changes.some((c: { kind: string }) => c.kind === 'xdp-changed'),
    'the classifier changed',
  );
  await flooding;
  await settle();
  const mid = packetStatus();
  const c1 = mid.packet.chains[0]!;
  assert.is(c1.in - c0.in, c1.out - c0.out + (c1.dropped - c0.dropped) + (c1.lost - c0.lost), 'every frame that entered before or after the swap came out');
  assert.ok(c1.in - c0.in > 0);
  const on5001 = (i: number) => eth({ src: rig.mac[rig.ifs.sX]!, dst: rig.mac[rig.ifs.dIn]! }, ipv4({ src: rig.ip.s, dst: rig.ip.r, ttl: 64 }, udp({ sport: 45000, dport: 5001 }, payload(i))));
  const got = await capture(rig.ns.r, rig.ifs.rX, 1500, () => send(rig.ns.s, rig.ifs.sX, [steered(1), steered(2), on5001(1), on5001(2), on5001(3)]));
  assert.is(got.filter((f) => isUdpTo(f, 5001)).length, 3, 'the newly steered flow goes through the chain at once');
  assert.ok(
    got.filter((f) => isUdpTo(f, 5001)).every((f) => ipText(f, 26) === NAT_ADDR()),
    'and is NATed',
  );
  assert.is(got.filter((f) => isUdpTo(f, 5000)).length, 0, 'the old flow is not steered any more (the DUT does not forward it)');
  const st = packetStatus();
  assert.is(st.processes.find((p) => p.kind === 'pktio')!.pid, pktio.pid, 'pktio was not restarted: its sockets stayed in the reused xskmap');
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)));
  const diff = cli(rig, ['diff', writePolicy(5001)]);
  assert.is(diff.status, 0, diff.stderr);
  assert.match(diff.stdout, /no changes|nothing to change|up to date/i);
});

test('Ctrl-C removes everything: sockets, programs, pins, pool, processes', async () => {
  run!.child.kill('SIGINT');
  assert.is(await run!.exited, 0, run!.stderr);
  assert.not.ok(existsSync(join(rig.env.BPFCTL_BPFFS!, POLICY)), 'pins');
  assert.not.ok(existsSync(`/dev/shm/bpfctl-pool-${ID}`), 'pool file');
  assert.is(sh('ip', ['netns', 'exec', rig.ns.d, 'ss', '--xdp', '-a', '-n']).split('\n').filter((l) => /\d/.test(l)).length, 0, 'no AF_XDP socket');
  const link = JSON.parse(sh('ip', ['-n', rig.ns.d, '-j', 'link', 'show', 'dev', rig.ifs.dIn]))[0];
  assert.not.ok(link.xdp, 'no XDP program on the ingress port');
  rig.destroy();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [rig.env.BPFCTL_BPFFS!, rig.env.BPFCTL_RUN_DIR!] }), []);
});

test.run();
