/**
 * Prometheus metrics of packet chains, end to end through the CLI: `bpfctl run --netns DUT
 * --metrics 127.0.0.1:0` of a packet-only policy (XDP steers UDP 5000 into nat -> count, out of
 * another interface), real frames from a sender namespace captured in a receiver namespace (the
 * rig of packet-chain.test.ts), then the scraped `/metrics` text must count exactly those frames
 * per chain, per function instance and per port, report both veth ports in copy mode and pktio
 * up, and pass `promtool check metrics` with no findings. A standalone `bpfctl metrics` (its own
 * process, only the pins and the pool file) must report the same counters; `bpfctl graph NAME`
 * of the running policy must draw its packet chain, entered from the XDP rule; `bpfctl top` of a
 * policy without request chains shows only the packet tables. Nothing is left after Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureBuilt } from '../helpers/dist.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { eth, ipv4, udp } from '../helpers/packets.ts';
import { capture, cli, createRig, isUdpTo, NF_DIR, type Rig, type Running, send, sleep, startRun, tearDown } from './packet-rig.ts';

const ID = `bpfctl-test-${process.pid}-pktm`;
const POLICY = `pktm${process.pid % 100000}`;
const CHAIN = 'nat-count';
const N = 25;
let rig: Rig;
let dir = '';
let before: Snapshot;
let run: Running | null = null;
let url = '';

function writePolicy(): string {
  const file = join(dir, 'policy.ts');
  const { ifs, mac, ip } = rig;
  writeFileSync(
    file,
    `import { definePolicy, pass, toChain, xdpSection } from 'bpfctl';
export default definePolicy({
  name: '${POLICY}',
  pool: { bufferSize: 2048, bufferCount: 1024 },
  packetFunctions: {
    nat: { handler: '${NF_DIR}/snat.c', env: { SNAT_ADDR: '${ip.dOut}', SNAT_PORTS: '20000-20999', SNAT_SRC_MAC: '${mac[ifs.dOut]}', SNAT_DST_MAC: '${mac[ifs.rX]}' } },
    count: { handler: '${NF_DIR}/count.c' },
  },
  packetChains: {
    '${CHAIN}': { functions: ['nat', 'count'], egress: { tx: '${ifs.dOut}' } },
  },
  xdp: [xdpSection({ interface: '${ifs.dIn}', rules: [toChain('${CHAIN}', { proto: 'udp', dport: 5000 }, { name: 'tenant' }), pass({}, { name: 'rest' })] })],
});
`,
  );
  return file;
}

function frame(i: number, ttl = 64): Uint8Array {
  const payload = Uint8Array.from(Buffer.from(`bpfctl metrics ${String(i).padStart(4, '0')}`));
  return eth({ src: rig.mac[rig.ifs.sX]!, dst: rig.mac[rig.ifs.dIn]! }, ipv4({ src: rig.ip.s, dst: rig.ip.r, ttl }, udp({ sport: 41000, dport: 5000 }, payload)));
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (comments skipped; label values unescaped). */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m![2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    out.push({ name: m![1]!, labels, value: Number(m![3]) });
  }
  return out;
}

/** Samples of `name` whose labels include `labels`. */
const series = (all: Sample[], name: string, labels: Record<string, string> = {}) => all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

/** The one sample of `name` with `labels`. */
function value(all: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = series(all, name, labels);
  assert.is(found.length, 1, `one series ${name}${JSON.stringify(labels)}: ${JSON.stringify(found)}`);
  return found[0]!.value;
}

function get(target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(target, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      })
      .on('error', reject);
  });
}

async function scrape(): Promise<{ text: string; all: Sample[] }> {
  const r = await get(url);
  assert.is(r.status, 200, r.body);
  return { text: r.body, all: parse(r.body) };
}

test.before(() => {
  ensureBuilt();
  before = snapshot();
  dir = mkdtempSync(join(tmpdir(), `${ID}-`));
  rig = createRig(ID, `bm${process.pid % 10000}`, 78);
});

test.after(() => tearDown(rig, run, dir));

test('bpfctl run --metrics reports its URL; before any frame: both ports bound in copy mode, pktio up, counters at 0', async () => {
  run = await startRun(rig, [writePolicy(), '--netns', rig.ns.d, '--pool', ID, '--metrics', '127.0.0.1:0']);
  url = String(run.started.metrics);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  assert.not.match(url, /:0\/metrics$/, 'the port actually bound');
  const { all } = await scrape();
  assert.is(value(all, 'bpfctl_policy_loaded', { policy: POLICY }), 1);
  assert.equal(
    series(all, 'bpfctl_packet_port_info').map((s) => [s.labels.interface, s.labels.mode, s.value]),
    [
      [rig.ifs.dIn, 'copy', 1],
      [rig.ifs.dOut, 'copy', 1],
    ],
  );
  assert.is(value(all, 'bpfctl_pktio_up'), 1);
  assert.is(value(all, 'bpfctl_packet_chain_frames_in_total', { chain: CHAIN }), 0);
  assert.equal(
    series(all, 'bpfctl_packet_instance_up').map((s) => [s.labels.function, s.labels.instance_id, s.value]),
    [
      ['nat', '0', 1],
      ['count', '0', 1],
    ],
  );
  assert.is(value(all, 'bpfctl_packet_function_instances', { function: 'count' }), 1);
  // A packet-only policy: pool gauges, no request chain series.
  assert.is(value(all, 'bpfctl_pool_buffers'), 1024);
  assert.equal(series(all, 'bpfctl_route_requests_total'), []);
  assert.equal(series(all, 'bpfctl_function_messages_total'), []);
});

test(`${N} frames through the chain and one its NAT drops: counted exactly per chain, function instance and port`, async () => {
  const frames = Array.from({ length: N }, (_, i) => frame(i));
  const got = await capture(rig.ns.r, rig.ifs.rX, 2500, () => send(rig.ns.s, rig.ifs.sX, [...frames, frame(N, 1)]));
  assert.is(got.filter((f) => isUdpTo(f, 5000)).length, N, 'what the receiver saw');
  await sleep(300);
  const { all } = await scrape();
  const chain = (what: string) => value(all, `bpfctl_packet_chain_frames_${what}_total`, { chain: CHAIN, policy: POLICY });
  assert.equal([chain('in'), chain('out'), chain('dropped'), chain('lost')], [N + 1, N, 1, 0], 'in, out, dropped, lost');
  const fn = (name: string, what: string) => value(all, `bpfctl_packet_function_frames_${what}_total`, { function: name, instance_id: '0' });
  assert.equal(['rx', 'passed', 'dropped', 'lost', 'reclaimed'].map((w) => fn('nat', w)), [N + 1, N, 1, 0, 0], 'nat: the TTL 1 frame dropped');
  assert.equal(['rx', 'passed', 'dropped', 'lost', 'reclaimed'].map((w) => fn('count', w)), [N, N, 0, 0, 0], 'count');
  for (const f of ['nat', 'count']) {
    const batches = value(all, 'bpfctl_packet_function_batches_total', { function: f });
    assert.ok(batches >= 1 && batches <= fn(f, 'rx'), `${f}: ${batches} batches`);
    assert.ok(value(all, 'bpfctl_packet_function_wakeups_total', { function: f }) >= 1, `${f} was woken (event driven)`);
    assert.is(value(all, 'bpfctl_packet_function_queued_frames', { function: f }), 0);
  }
  const port = (ifn: string, what: string) => value(all, `bpfctl_packet_port_frames_${what}_total`, { interface: ifn });
  assert.equal([port(rig.ifs.dIn, 'rx'), port(rig.ifs.dIn, 'tx'), port(rig.ifs.dIn, 'no_chain'), port(rig.ifs.dIn, 'lost')], [N + 1, 0, 0, 0], 'ingress port');
  assert.equal([port(rig.ifs.dOut, 'rx'), port(rig.ifs.dOut, 'tx'), port(rig.ifs.dOut, 'tx_failed')], [0, N, 0], 'egress port');
  assert.equal(series(all, 'bpfctl_packet_port_kernel_drops_total', { interface: rig.ifs.dIn }).map((s) => s.labels.reason), ['rx_dropped', 'rx_ring_full', 'rx_fill_empty']);
  assert.is(value(all, 'bpfctl_packet_port_kernel_drops_total', { interface: rig.ifs.dIn, reason: 'rx_ring_full' }), 0);
  const posted = series(all, 'bpfctl_packet_port_posted_buffers').reduce((n, s) => n + s.value, 0);
  assert.ok(value(all, 'bpfctl_packet_port_posted_buffers', { interface: rig.ifs.dIn }) > 0, 'the fill ring holds buffers');
  assert.is(value(all, 'bpfctl_pool_buffers_in_use'), posted, 'every buffer not posted to the kernel is back in the pool');
  assert.is(value(all, 'bpfctl_packet_tx_queued_frames'), 0);
  assert.is(value(all, 'bpfctl_packet_port_queues', { interface: rig.ifs.dIn }), 1);
});

test('promtool check metrics accepts the scrape', async () => {
  const { text } = await scrape();
  assert.match(text, '# TYPE bpfctl_packet_chain_frames_in_total counter');
  assert.match(text, '# TYPE bpfctl_packet_function_queued_frames gauge');
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  const output = `${r.stdout}${r.stderr}`.trim();
  assert.is(r.status, 0, output);
  assert.is(output, '', 'no lint findings');
});

test('bpfctl metrics NAME (another process: pins and pool file only) reports the same packet counters', async () => {
  const once = cli(rig, ['metrics', POLICY, '--once', '--pool', ID]);
  assert.is(once.status, 0, once.stderr);
  const counters = (all: Sample[]) => all.filter((s) => s.name.startsWith('bpfctl_packet_') && s.name.endsWith('_total'));
  const standalone = counters(parse(once.stdout));
  assert.ok(standalone.length > 20, `${standalone.length} packet counter series`);
  assert.equal(standalone, counters((await scrape()).all));
  const j = cli(rig, ['metrics', POLICY, '--once', '--pool', ID, '--json']);
  assert.is(j.status, 0, j.stderr);
  const m = (JSON.parse(j.stdout) as { name: string; type: string; values: { labels: Record<string, string>; value: number }[] }[]).find((x) => x.name === 'bpfctl_packet_chain_frames_out_total')!;
  assert.is(m.type, 'counter');
  assert.equal(m.values, [{ labels: { chain: CHAIN, policy: POLICY }, value: N }]);
  // Without --pool it looks for a pool named after the policy, which this run does not have.
  const other = cli(rig, ['metrics', POLICY, '--once']);
  assert.is(other.status, 0, other.stderr);
  const none = parse(other.stdout);
  assert.is(value(none, 'bpfctl_policy_loaded'), 1);
  assert.equal(
    none.filter((s) => /^bpfctl_(packet|pktio|pool)_/.test(s.name)),
    [],
    'no pool: no packet, pktio or pool series',
  );
});

test('scaling a packet function live shows in its instance gauges', async () => {
  const up = cli(rig, ['scale', POLICY, 'count', '2', '--json']);
  assert.is(up.status, 0, up.stderr);
  let all = (await scrape()).all;
  assert.is(value(all, 'bpfctl_packet_function_instances', { function: 'count' }), 2);
  assert.equal(series(all, 'bpfctl_packet_instance_up', { function: 'count' }).map((s) => s.labels.instance_id), ['0', '1']);
  const down = cli(rig, ['scale', POLICY, 'count', '1', '--json']);
  assert.is(down.status, 0, down.stderr);
  all = (await scrape()).all;
  assert.is(value(all, 'bpfctl_packet_function_instances', { function: 'count' }), 1);
  assert.equal(series(all, 'bpfctl_packet_instance_up', { function: 'count' }).map((s) => s.labels.instance_id), ['0']);
  // Instance 0 kept its counts.
  assert.is(value(all, 'bpfctl_packet_function_frames_rx_total', { function: 'count', instance_id: '0' }), N);
});

test('bpfctl graph NAME of the running policy draws its packet chain, entered from the XDP rule', () => {
  const g = cli(rig, ['graph', POLICY, '--format', 'mermaid']);
  assert.is(g.status, 0, g.stderr);
  assert.match(g.stdout, /^%% generated by bpfctl from policy \S+ as it runs\n/);
  assert.match(g.stdout, `\n\tsubgraph pc0["packet chain ${CHAIN}"]\n\t\tpc0_h0["nat"]\n\t\tpc0_h1["count"]\n\t\tpc0_out>"out of ${rig.ifs.dOut}"]\n\tend\n`);
  assert.match(g.stdout, '\n\txdp0_out_chain_nat_count -->|"AF_XDP"| pc0_h0\n');
  // The rule's counter is the kernel's: every steered frame.
  assert.match(g.stdout, `#0 tenant<br/>ip udp dport 5000<br/>-> chain ${CHAIN}`);
  assert.match(g.stdout, `${N + 1} packets`);
  const dot = cli(rig, ['graph', POLICY]);
  assert.is(dot.status, 0, dot.stderr);
  assert.match(dot.stdout, `subgraph "cluster_pc0" {\n\t\tlabel="packet chain ${CHAIN}";`);
  assert.match(dot.stdout, '\txdp0_out_chain_nat_count -> pc0_h0 [label="AF_XDP"];\n');
});

test('bpfctl top of a policy without request chains shows only the packet tables', () => {
  const r = cli(rig, ['top', POLICY, '--count', '1', '--interval', '0.3']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, 'Packet chains (frames)');
  assert.match(r.stdout, 'Packet functions');
  assert.match(r.stdout, 'AF_XDP ports');
  assert.not.match(r.stdout, /Routes|Functions \(messages|req = requests/);
});

test('Ctrl-C: the run and its metrics endpoint stop, nothing is left', async () => {
  run!.child.kill('SIGINT');
  assert.is(await run!.exited, 0, run!.stderr);
  await get(url).then(
    (r) => assert.unreachable(`metrics still served: ${r.status}`),
    (err: NodeJS.ErrnoException) => assert.is(err.code, 'ECONNREFUSED'),
  );
  assert.not.ok(existsSync(join(rig.env.BPFCTL_BPFFS!, POLICY)), 'pins');
  assert.not.ok(existsSync(`/dev/shm/bpfctl-pool-${ID}`), 'pool file');
  rig.destroy();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [rig.env.BPFCTL_BPFFS!, rig.env.BPFCTL_RUN_DIR!] }), []);
});

test.run();
