/**
 * TypeScript packet functions as a user runs them (docs/packet-chains.md, "TypeScript packet
 * functions"): `bpfctl run --netns DUT` of a policy whose chain mixes a TypeScript NF
 * (examples/packet-nat/nf/port-map.ts: port rewrite + TTL with incremental checksums), a second
 * TypeScript NF (test fixture judge.ts: drops, a throwing batch, a full checksum recompute, the
 * next hop's MACs) and the C counter, on real veth traffic:
 *
 *   sender ns ──veth──► DUT ns (XDP + AF_XDP) ─ port-map (TS) ─ judge (TS) ─ count (C) ─► veth ──► receiver ns
 *
 * Checked byte for byte at the receiver; drops and a handler's exception are counted, not fatal;
 * a TS instance killed under load is restarted with the books balanced; nothing is left after
 * Ctrl-C; a TS handler without a default export fails `run` with one line and leaves nothing.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureBuilt } from '../helpers/dist.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { checksum, eth, ipv4, udp } from '../helpers/packets.ts';
import { be16, capture, cli, createRig, flood, ipText, isUdpTo, macText, NF_DIR, type Rig, type Running, send, sleep, startRun, sum, tearDown } from './packet-rig.ts';

const ID = `bpfctl-test-${process.pid}-pts`;
const POLICY = `pts${process.pid % 100000}`;
const FIXTURES = join(import.meta.dirname, 'fixtures/packet-ts');
let rig: Rig;
let dir = '';
let before: Snapshot;
let run: Running | null = null;

function writePolicy(judgeHandler = `${FIXTURES}/judge.ts`, portMap = '5000:6000'): string {
  const file = join(dir, 'policy.ts');
  const { ifs, mac } = rig;
  writeFileSync(
    file,
    `import { definePolicy, pass, toChain, xdpSection } from 'bpfctl';
export default definePolicy({
  name: '${POLICY}',
  pool: { bufferSize: 2048, bufferCount: 1024 },
  packetFunctions: {
    portmap: { handler: '${NF_DIR}/port-map.ts', env: { PORT_MAP: '${portMap}' } },
    judge: { handler: '${judgeHandler}', env: { NEXT_SRC_MAC: '${mac[ifs.dOut]}', NEXT_DST_MAC: '${mac[ifs.rX]}' } },
    count: { handler: '${NF_DIR}/count.c' },
  },
  packetChains: {
    ts: { functions: ['portmap', 'judge', 'count'], egress: { tx: '${ifs.dOut}' } },
  },
  xdp: [
    xdpSection({
      interface: '${ifs.dIn}',
      rules: [toChain('ts', { proto: 'udp', dport: 5000 }, { name: 'tenant' }), pass({}, { name: 'rest' })],
    }),
  ],
});
`,
  );
  return file;
}

const word = (s: string, i: number) => Uint8Array.from(Buffer.from(`${s}${String(i).padStart(4, '0')}-bpfctl`));

function frame(kind: string, i: number, sport = 41000): Uint8Array {
  return eth({ src: rig.mac[rig.ifs.sX]!, dst: rig.mac[rig.ifs.dIn]! }, ipv4({ src: rig.ip.s, dst: rig.ip.r, ttl: 64 }, udp({ sport, dport: 5000 }, word(kind, i))));
}

interface Status {
  packet: {
    chains: { name: string; in: number; out: number; dropped: number; lost: number }[];
    pool: { inUse: number };
    ports: { posted: number }[];
    functions: { name: string; instances: { rx: number; passed: number; dropped: number; reclaimed: number }[] }[];
  };
  processes: { kind: string; name: string; pid: number; restarts: number; state: string }[];
}

function status(): Status {
  const r = cli(rig, ['status', POLICY, '--json']);
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const udpChecksumOk = (f: Uint8Array) => {
  const len = be16(f, 38);
  return checksum(Uint8Array.from([...f.subarray(26, 34), 0, 17, len >> 8, len & 0xff]), f.subarray(34, 34 + len)) === 0;
};

test.before(() => {
  ensureBuilt();
  before = snapshot();
  dir = mkdtempSync(join(tmpdir(), `${ID}-`));
  rig = createRig(ID, `pt${process.pid % 10000}`, 84);
});

test.after(() => tearDown(rig, run, dir));

test('a TS handler without a default export: run fails with one line naming it, nothing left', async () => {
  const bad = join(dir, 'nodefault.ts');
  writeFileSync(bad, 'export function judge(): void {}\n');
  const r = cli(rig, ['run', writePolicy(bad), '--netns', rig.ns.d, '--pool', ID]);
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /packetFunctions\.judge\.handler: .*nodefault\.ts has no default export/);
  assert.ok(!r.stderr.includes('    at '), `no stack trace:\n${r.stderr}`);
  assert.equal(await leaksSince(before, { ownDirs: [rig.env.BPFCTL_BPFFS!, rig.env.BPFCTL_RUN_DIR!], fixtures: [...Object.values(rig.ns), ...Object.values(rig.ifs), dir] }), [], 'nothing loaded, pinned or running');
});

test('a TS NF whose module throws at start (a bad PORT_MAP): run fails naming why, nothing left', async () => {
  const r = cli(rig, ['run', writePolicy(undefined, '5000-6000'), '--netns', rig.ns.d, '--pool', ID]);
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /portmap: cannot import handler .*port-map\.ts: PORT_MAP: '5000-6000' is not from:to with ports 1\.\.65535/);
  assert.match(r.stderr, /portmap#0 .*died before it registered/);
  assert.equal(await leaksSince(before, { ownDirs: [rig.env.BPFCTL_BPFFS!, rig.env.BPFCTL_RUN_DIR!], fixtures: [...Object.values(rig.ns), ...Object.values(rig.ifs), dir] }), [], 'nothing loaded, pinned or running');
});

test('frames through two TypeScript NFs and a C one arrive rewritten byte for byte', async () => {
  run = await startRun(rig, [writePolicy(), '--netns', rig.ns.d, '--pool', ID]);
  const st0 = status();
  const kinds = st0.processes.filter((p) => p.kind === 'packet').map((p) => p.name);
  assert.equal(kinds.sort(), ['count', 'judge', 'portmap']);
  const N = 20;
  const frames = Array.from({ length: N }, (_, i) => frame('pass', i));
  const full = Array.from({ length: 4 }, (_, i) => frame('full', i));
  const got = await capture(rig.ns.r, rig.ifs.rX, 2500, () => send(rig.ns.s, rig.ifs.sX, [...frames, ...full]));
  const out = got.filter((f) => isUdpTo(f, 6000));
  assert.is(out.length, N + full.length, `${N + full.length} frames out (captured ${got.length})`);
  out.slice(0, N).forEach((f, i) => {
    const sent = frames[i]!;
    assert.is(macText(f, 0), rig.mac[rig.ifs.rX], 'destination MAC set by judge.ts');
    assert.is(macText(f, 6), rig.mac[rig.ifs.dOut], 'source MAC set by judge.ts');
    assert.is(be16(f, 36), 6000, 'destination port mapped by port-map.ts');
    assert.is(be16(f, 34), 41000, 'source port kept');
    assert.is(f[22], 63, 'TTL decremented');
    assert.is(checksum(f.subarray(14, 34)), 0, 'IPv4 header checksum valid (incremental update)');
    assert.ok(udpChecksumOk(f), 'UDP checksum valid (incremental update)');
    assert.is(ipText(f, 26), rig.ip.s);
    assert.is(ipText(f, 30), rig.ip.r);
    assert.equal([...f.subarray(42, 42 + word('pass', i).length)], [...word('pass', i)], 'payload untouched, in order');
    assert.equal([...f.subarray(12, 22)], [...sent.subarray(12, 22)], 'the rest of the IPv4 header as sent');
  });
  for (const f of out.slice(N)) {
    assert.is(be16(f, 34), 7777, 'source port rewritten by judge.ts');
    assert.is(checksum(f.subarray(14, 34)), 0, 'IPv4 checksum valid (full recompute)');
    assert.ok(udpChecksumOk(f), 'UDP checksum valid (full recompute in C)');
  }
  await sleep(300);
  const st = status();
  const chain = st.packet.chains.find((c) => c.name === 'ts')!;
  assert.is(chain.in, N + full.length);
  assert.is(chain.out, N + full.length);
  const fn = (name: string) => st.packet.functions.find((f) => f.name === name)!;
  assert.is(sum(fn('portmap').instances.map((i) => i.rx)), N + full.length, 'the TS function counted what it received');
  assert.is(sum(fn('judge').instances.map((i) => i.passed)), N + full.length);
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)), 'every buffer not posted to the kernel is back in the pool');
});

test('DROP verdicts and a throwing handler: frames dropped and counted, the instance lives on', async () => {
  const st0 = status();
  const judge0 = st0.processes.find((p) => p.kind === 'packet' && p.name === 'judge')!;
  const c0 = st0.packet.chains.find((c) => c.name === 'ts')!;
  // A gap between the sends keeps the throwing frame in a batch of its own.
  const drops = Array.from({ length: 5 }, (_, i) => frame('drop', i));
  const got = await capture(rig.ns.r, rig.ifs.rX, 2000, async () => {
    send(rig.ns.s, rig.ifs.sX, drops, 5);
    await sleep(200);
    send(rig.ns.s, rig.ifs.sX, [frame('boom', 0)], 5);
    await sleep(200);
    send(rig.ns.s, rig.ifs.sX, [frame('pass', 1)], 5);
  });
  const out = got.filter((f) => isUdpTo(f, 6000));
  assert.is(out.length, 1, 'only the frame that passes comes out');
  await sleep(300);
  const st = status();
  const c = st.packet.chains.find((x) => x.name === 'ts')!;
  assert.is(c.in - c0.in, 7);
  assert.is(c.out - c0.out, 1);
  assert.is(c.dropped - c0.dropped, 6, 'five DROP verdicts and the batch whose handler threw');
  const judge = st.processes.find((p) => p.kind === 'packet' && p.name === 'judge')!;
  assert.is(judge.pid, judge0.pid, 'the exception did not kill the instance');
  assert.is(judge.restarts, 0);
  assert.match(run!.stderr, /judge: handler failed on a batch of 1 \(dropped; 1 so far\): Error: boom in the payload/);
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)));
});

test('a TypeScript NF killed under load is restarted; every frame is accounted for, no buffer lost', async () => {
  const st0 = status();
  const pm = st0.processes.find((p) => p.kind === 'packet' && p.name === 'portmap')!;
  const flooding = flood(rig.ns.s, rig.ifs.sX, 3, 2000, frame('pass', 7, 42000));
  await sleep(1000);
  process.kill(pm.pid, 'SIGKILL');
  const sent = await flooding;
  let st = status();
  for (let i = 0; i < 50; i++) {
    const now = st.processes.find((p) => p.kind === 'packet' && p.name === 'portmap')!;
    if (now.pid !== pm.pid && now.state === 'ready') break;
    await sleep(200);
    st = status();
  }
  await sleep(500);
  st = status();
  const now = st.processes.find((p) => p.kind === 'packet' && p.name === 'portmap')!;
  assert.is.not(now.pid, pm.pid, 'a new portmap process');
  assert.is(now.restarts, 1);
  assert.is(now.state, 'ready');
  const c0 = st0.packet.chains.find((c) => c.name === 'ts')!;
  const c = st.packet.chains.find((x) => x.name === 'ts')!;
  const reclaimed = sum(st.packet.functions.flatMap((f) => f.instances.map((i) => i.reclaimed))) - sum(st0.packet.functions.flatMap((f) => f.instances.map((i) => i.reclaimed)));
  const entered = c.in - c0.in;
  assert.ok(entered > 1000, `frames entered the chain (${entered} of ${sent} sent)`);
  assert.ok(c.out - c0.out > entered / 2, `most came out (${c.out - c0.out} of ${entered})`);
  assert.is(entered, c.out - c0.out + (c.dropped - c0.dropped) + (c.lost - c0.lost) + reclaimed, 'transmitted + dropped + lost + reclaimed = entered');
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)), 'no buffer lost');
  const got = await capture(rig.ns.r, rig.ifs.rX, 1500, () => send(rig.ns.s, rig.ifs.sX, [frame('pass', 1), frame('pass', 2)]));
  assert.is(got.filter((f) => isUdpTo(f, 6000)).length, 2, 'the restarted instance works');
});

test('scale a TypeScript NF live: flows spread over its instances, scaling down loses nothing', async () => {
  const up = cli(rig, ['scale', POLICY, 'portmap', '2', '--json']);
  assert.is(up.status, 0, up.stderr);
  const fnOf = (st: Status) => st.packet.functions.find((f) => f.name === 'portmap')!;
  const st0 = status();
  assert.is(fnOf(st0).instances.length, 2);
  const frames = Array.from({ length: 40 }, (_, i) => frame('pass', i, 43000 + i));
  const got = await capture(rig.ns.r, rig.ifs.rX, 2500, () => send(rig.ns.s, rig.ifs.sX, frames, 1));
  assert.is(got.filter((f) => isUdpTo(f, 6000)).length, 40);
  await sleep(300);
  const st1 = status();
  const rx0 = (st: Status, i: number) => fnOf(st).instances[i]?.rx ?? 0;
  assert.ok(rx0(st1, 0) > rx0(st0, 0) && rx0(st1, 1) > rx0(st0, 1), `40 flows reached both TypeScript instances (${rx0(st1, 0) - rx0(st0, 0)}, ${rx0(st1, 1) - rx0(st0, 1)})`);
  const down = cli(rig, ['scale', POLICY, 'portmap', '1', '--json']);
  assert.is(down.status, 0, down.stderr);
  const after = await capture(rig.ns.r, rig.ifs.rX, 1500, () => send(rig.ns.s, rig.ifs.sX, frames.slice(0, 10), 1));
  assert.is(after.filter((f) => isUdpTo(f, 6000)).length, 10, 'after scaling down every frame still comes out');
  const st = status();
  assert.is(st.packet.pool.inUse, sum(st.packet.ports.map((p) => p.posted)));
});

test('an edited TypeScript NF is a code change for diff, and apply --restart runs the new code', async () => {
  const judge = join(dir, 'judge.ts');
  writeFileSync(judge, readFileSync(`${FIXTURES}/judge.ts`, 'utf8'));
  // The policy now names a copy; the same bytes first: a path change only.
  const file = writePolicy(judge);
  writeFileSync(judge, readFileSync(judge, 'utf8').replace("if (t === 'drop') {", "if (t === 'drop' || t === 'pass') {"));
  const d = cli(rig, ['diff', file, '--json']);
  assert.is(d.status, 0, d.stderr);
  const changes = JSON.parse(d.stdout).changes as { kind: string; name?: string; action?: string }[];
  assert.ok(
    changes.some((c) => c.name === 'judge' && c.action === 'restart'),
    `diff names judge as needing a restart: ${JSON.stringify(changes)}`,
  );
  const r = cli(rig, ['apply', file, '--restart', '--json']);
  assert.is(r.status, 0, r.stderr);
  const got = await capture(rig.ns.r, rig.ifs.rX, 1500, () => send(rig.ns.s, rig.ifs.sX, [frame('pass', 1), frame('full', 1)]));
  const out = got.filter((f) => isUdpTo(f, 6000));
  assert.is(out.length, 1, 'the new judge drops "pass" frames; "full" still passes');
  assert.is(be16(out[0]!, 34), 7777);
});

test('Ctrl-C: the TS instances drain and exit; nothing is left', async () => {
  run!.child.kill('SIGINT');
  const code = await run!.exited;
  assert.is(code, 0, run!.stderr);
  rig.destroy();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [rig.env.BPFCTL_BPFFS!, rig.env.BPFCTL_RUN_DIR!] }), [], 'no program, pin, pool, process or cgroup left');
});

test.run();
