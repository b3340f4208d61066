/**
 * Prometheus metrics end to end: `bpfctl run --metrics` of a copy of hello-chain and a standalone
 * `bpfctl metrics NAME` (a process with only the pins), both scraped by a real Prometheus server
 * (Debian's) at a 1 s interval; real HTTP requests of every kind (200 on two routes, 404, 405,
 * 413), then Prometheus's HTTP API must give back exactly those counts per route, per status and
 * in the latency histogram. `promtool check metrics` must accept a scrape. An XDP section on a
 * veth in namespaces must show its rule counters, and the Node writer of the shared gateway
 * block must agree with the reader on a real mapped map.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BPF_F_MMAPABLE, unpinAll } from '../../loader/index.ts';
import { type Manifest, MANIFEST_VERSION, writeManifest } from '../../src/deploy/manifest.ts';
import { policyDir } from '../../src/deploy/paths.ts';
import { deployXdp, undeployXdp } from '../../src/deploy/xdp.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';
import { readGateways } from '../../src/metrics/gateway-reader.ts';
import { GatewayStatsSlot } from '../../src/runtime/gateway/stats-slot.ts';
import { LATENCY_BOUNDS, SLOT_SIZE, SLOTS } from '../../src/schema/gateway-stats.ts';
import { main } from '../../src/cli/main.ts';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair, type NetnsPair } from '../helpers/netns.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const SOURCE_CLI = join(repo, 'test/kernel/fixtures/bpfctl-source.ts');
const ID = `bpfctl-test-${process.pid}-metrics`;
const NAME = 'metrics-chain';
const XDP_NAME = 'metrics-xdp';
const ENV = {
  BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`,
  BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`,
  BPFCTL_RUN_DIR: `/tmp/${ID}-run`,
};
const ROOTS = [ENV.BPFCTL_BPFFS, ENV.BPFCTL_CGROUP_PARENT, ENV.BPFCTL_RUN_DIR];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let before: Snapshot;
let dir = '';
let promDir = '';
let netns: NetnsPair | null = null;
const procs: { name: string; child: ChildProcess; log: string }[] = [];
const ports = { http: 0, run: 0, standalone: 0, prom: 0 };

/** A port free right now (a race with other binders remains; the server that takes it reports it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function start(name: string, cmd: string, args: string[]): { name: string; child: ChildProcess; log: string } {
  const child = spawn(cmd, args, { cwd: repo, env: { ...process.env, ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { name, child, log: '' };
  child.stdout!.on('data', (b) => (p.log += b));
  child.stderr!.on('data', (b) => (p.log += b));
  procs.push(p);
  return p;
}

async function waitLog(p: { log: string; child: ChildProcess }, text: string, ms = 60_000): Promise<void> {
  for (let t = 0; t < ms && !p.log.includes(text); t += 100) {
    if (p.child.exitCode !== null) break;
    await sleep(100);
  }
  assert.ok(p.log.includes(text), `waited for '${text}': ${p.log.slice(-800)}`);
}

async function stop(p: { child: ChildProcess }): Promise<number | null> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return p.child.exitCode;
  const exited = new Promise<number | null>((r) => p.child.once('exit', (c) => r(c)));
  p.child.kill('SIGTERM');
  return exited;
}

/** The CLI in-process with this file's roots, as a user's shell would have them set. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const saved = Object.fromEntries(Object.keys(ENV).map((k) => [k, process.env[k]]));
  Object.assign(process.env, ENV);
  const out: string[] = [];
  const err: string[] = [];
  try {
    const code = await main(args, { stdout: { write: (t: string) => void out.push(t) }, stderr: { write: (t: string) => void err.push(t) } });
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function request(method: string, path: string, body = ''): Promise<{ status: number; body: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: ports.http, path, method, agent: false, headers: { 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ms: performance.now() - t0 }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body || undefined);
  });
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      })
      .on('error', reject);
  });
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query against the Prometheus server's HTTP API. */
async function query(q: string): Promise<Sample[]> {
  const r = await get(ports.prom, `/api/v1/query?query=${encodeURIComponent(q)}`);
  assert.is(r.status, 200, `${q}: ${r.body}`);
  const j = JSON.parse(r.body) as { status: string; data: { resultType: string; result: Sample[] } };
  assert.is(j.status, 'success');
  return j.data.result;
}

/** A query's result as label value -> number. */
async function by(label: string, q: string): Promise<Record<string, number>> {
  return Object.fromEntries((await query(q)).map((s) => [s.metric[label] ?? '', Number(s.value[1])]));
}

async function scalar(q: string): Promise<number | undefined> {
  const r = await query(q);
  return r.length ? Number(r[0]!.value[1]) : undefined;
}

/** Waits until Prometheus has scraped a value of `q` equal to `want`. */
async function untilProm(q: string, want: number, ms = 30_000): Promise<void> {
  let got: number | undefined;
  for (let t = 0; t < ms; t += 250) {
    got = await scalar(q);
    if (got === want) return;
    await sleep(250);
  }
  assert.is(got, want, `Prometheus: ${q}`);
}

function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

test.before(async () => {
  before = snapshot();
  // Inside the checkout: the policy imports 'bpfctl', which resolves from here.
  dir = mkdtempSync(join(repo, `.test-${process.pid}-metrics-`));
  cpSync(join(repo, 'examples/hello-chain'), dir, { recursive: true });
  const policy = join(dir, 'policy.ts');
  writeFileSync(policy, readFileSync(policy, 'utf8').replace("name: 'hello-chain'", `name: '${NAME}'`));
  for (const k of ['http', 'run', 'standalone', 'prom'] as const) ports[k] = await freePort();

  const run = start('bpfctl run', process.execPath, ['--import', 'tsx', SOURCE_CLI, 'run', policy, '--port', String(ports.http), '--metrics', `127.0.0.1:${ports.run}`]);
  await waitLog(run, `127.0.0.1:${ports.http}/hello`);
  assert.match(run.log, `metrics on http://127.0.0.1:${ports.run}/metrics`);
  const standalone = start('bpfctl metrics', process.execPath, ['--import', 'tsx', SOURCE_CLI, 'metrics', NAME, '--listen', `127.0.0.1:${ports.standalone}`]);
  await waitLog(standalone, `metrics of ${NAME} on http://127.0.0.1:${ports.standalone}/metrics`);

  promDir = mkdtempSync(`/tmp/bpfctl-test-${process.pid}-prom-`);
  writeFileSync(
    join(promDir, 'prometheus.yml'),
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 900ms',
      'scrape_configs:',
      '  - job_name: run',
      `    static_configs: [{ targets: ['127.0.0.1:${ports.run}'] }]`,
      '  - job_name: standalone',
      `    static_configs: [{ targets: ['127.0.0.1:${ports.standalone}'] }]`,
      '',
    ].join('\n'),
  );
  const prom = start('prometheus', 'prometheus', [
    `--config.file=${join(promDir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${ports.prom}`,
    '--log.level=warn',
  ]);
  for (let t = 0; t < 30_000; t += 200) {
    if (prom.child.exitCode !== null) break;
    const ready = await get(ports.prom, '/-/ready').catch(() => null);
    if (ready?.status === 200) break;
    await sleep(200);
  }
  await untilProm('sum(up{job=~"run|standalone"})', 2);
});

test.after(async () => {
  for (const p of [...procs].reverse()) await stop(p);
  if (netns) {
    undeployXdp(policyDir(XDP_NAME, ENV.BPFCTL_BPFFS));
    unpinAll(policyDir(XDP_NAME, ENV.BPFCTL_BPFFS));
    netns.destroy();
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(promDir, { recursive: true, force: true });
  removeOwnDirs(ROOTS);
});

const sent = { hello: [] as { body: string; ms: number }[], shout: [] as { body: string; ms: number }[] };
const INPUT = 'hello world';

test('requests of every kind: Prometheus sees each route, each status and every chain request in the histogram', async () => {
  for (let i = 0; i < 7; i++) {
    const r = await request('POST', '/hello', INPUT);
    assert.is(r.status, 200, r.body);
    sent.hello.push(r);
  }
  for (let i = 0; i < 5; i++) {
    const r = await request('POST', '/shout', INPUT);
    assert.is(r.status, 200, r.body);
    sent.shout.push(r);
  }
  for (let i = 0; i < 3; i++) assert.is((await request('POST', '/nope', INPUT)).status, 404);
  for (let i = 0; i < 2; i++) assert.is((await request('GET', '/hello')).status, 405);
  // hello-chain's buffers are 4096 bytes.
  for (let i = 0; i < 2; i++) assert.is((await request('POST', '/shout', 'x'.repeat(5000))).status, 413);

  await untilProm('sum(bpfctl_gateway_responses_total{job="run"})', 19);
  assert.equal(await by('code', `sum by (code) (bpfctl_gateway_responses_total{job="run",policy="${NAME}"})`), { 200: 12, 404: 3, 405: 2, 413: 2 });
  assert.equal(await by('route', 'sum by (route) (bpfctl_route_requests_total{job="run"})'), { '/hello': 7, '/shout': 5 });
  // Every hop's descriptor: /hello is gateway -> upper -> reverse -> stamp -> gateway.
  assert.equal(await by('route', 'sum by (route) (bpfctl_route_messages_total{job="run"})'), { '/hello': 7 * 4, '/shout': 5 * 3 });
  // upper and reverse keep the length; the last hop carries the answer.
  const bytes = (rs: { body: string }[], keep: number) => rs.reduce((n, r) => n + keep * INPUT.length + Buffer.byteLength(r.body), 0);
  assert.equal(await by('route', 'sum by (route) (bpfctl_route_bytes_total{job="run"})'), { '/hello': bytes(sent.hello, 3), '/shout': bytes(sent.shout, 2) });
  assert.equal(await by('function', 'sum by (function) (bpfctl_function_messages_total{job="run"})'), { gateway: 12, upper: 12, reverse: 7, stamp: 12 });
  assert.equal(await by('function', 'bpfctl_function_instances{job="run"}'), { gateway: 1, upper: 2, reverse: 1, stamp: 1 });
  assert.equal(await by('instance_id', 'bpfctl_instance_up{job="run",function="upper"}'), { 0: 1, 1: 1 });
  assert.is(await scalar('sum(bpfctl_chain_drops_total{job="run"})'), 0);
  assert.is(await scalar('bpfctl_pool_buffers{job="run"}'), 1024);
  assert.is(await scalar('bpfctl_pool_buffers_in_use{job="run"}'), 0, 'every buffer came back');
  assert.equal(await by('engine', 'bpfctl_gateway_info{job="run"}'), { native: 1 });

  // Only the 12 requests that went into the chain have a latency; it is inside what the client saw.
  assert.is(await scalar('sum(bpfctl_gateway_request_duration_seconds_count{job="run"})'), 12);
  assert.is(await scalar('sum(bpfctl_gateway_request_duration_seconds_bucket{job="run",le="+Inf"})'), 12);
  const sum = (await scalar('sum(bpfctl_gateway_request_duration_seconds_sum{job="run"})'))!;
  const client = [...sent.hello, ...sent.shout].reduce((n, r) => n + r.ms / 1000, 0);
  assert.ok(sum > 0 && sum <= client, `gateway latency sum ${sum} s within the clients' ${client} s`);
  const buckets = await by('le', 'sum by (le) (bpfctl_gateway_request_duration_seconds_bucket{job="run"})');
  const les = [...LATENCY_BOUNDS.map(String), '+Inf'];
  assert.equal(Object.keys(buckets).sort(), [...les].sort());
  for (let i = 1; i < les.length; i++) assert.ok(buckets[les[i]!]! >= buckets[les[i - 1]!]!, `buckets are cumulative at le=${les[i]}`);
  const slowest = Math.max(...[...sent.hello, ...sent.shout].map((r) => r.ms / 1000));
  const cover = LATENCY_BOUNDS.find((b) => b >= slowest);
  if (cover !== undefined) assert.is(buckets[String(cover)], 12, `every request within le=${cover} (the slowest client saw ${slowest} s)`);
});

test('promtool check metrics accepts a scrape of bpfctl run --metrics and of bpfctl metrics', async () => {
  for (const port of [ports.run, ports.standalone]) {
    const r = await get(port, '/metrics');
    assert.is(r.status, 200);
    assert.match(r.body, 'bpfctl_gateway_responses_total{instance_id="0",code="200"');
    const check = promtool(r.body);
    assert.is(check.status, 0, check.output);
    assert.is(check.output, '', 'no lint findings');
  }
  assert.is((await get(ports.run, '/nope')).status, 404);
});

test('a route change is a new version series; the draining version keeps its count', async () => {
  const r = await cli('route', 'set', NAME, '/shout', 'stamp', 'upper');
  assert.is(r.code, 0, r.stderr);
  for (let i = 0; i < 3; i++) assert.is((await request('POST', '/shout', INPUT)).status, 200);
  await untilProm('sum(bpfctl_route_requests_total{job="run",route="/shout"})', 8);
  const versions = await by('version', 'bpfctl_route_requests_total{job="run",route="/shout"}');
  assert.is(Object.keys(versions).length, 2, JSON.stringify(versions));
  const [older, newer] = Object.keys(versions).map(Number).sort((a, b) => a - b);
  assert.equal(versions, { [older!]: 5, [newer!]: 3 });
  assert.is(await scalar(`bpfctl_route_messages_total{job="run",route="/shout",version="${newer}"}`), 3 * 3);
  assert.is(await scalar(`bpfctl_route_messages_total{job="run",route="/shout",version="${older}"}`), 5 * 3);
});

test('bpfctl metrics NAME, a process with only the pins, reports what bpfctl run reports', async () => {
  await untilProm('sum(bpfctl_gateway_responses_total{job="standalone"})', 22);
  for (const [label, q] of [
    ['code', 'sum by (code) (bpfctl_gateway_responses_total{job="JOB"})'],
    ['route', 'sum by (route) (bpfctl_route_requests_total{job="JOB"})'],
    ['function', 'sum by (function) (bpfctl_function_messages_total{job="JOB"})'],
  ] as const) {
    assert.equal(await by(label, q.replace('JOB', 'standalone')), await by(label, q.replace('JOB', 'run')), q);
  }
  assert.equal(await by('route', 'sum by (route) (bpfctl_route_requests_total{job="standalone"})'), { '/hello': 7, '/shout': 8 });
  // One scrape as JSON, for scripts.
  const once = await cli('metrics', NAME, '--once', '--json');
  assert.is(once.code, 0, once.stderr);
  const all = JSON.parse(once.stdout) as { name: string; type: string; values: { labels: Record<string, string | number>; value: number }[] }[];
  const responses = all.find((m) => m.name === 'bpfctl_gateway_responses_total')!;
  assert.is(responses.type, 'counter');
  assert.is(responses.values.find((v) => v.labels.code === 200)?.value, 15);
  assert.is(responses.values[0]!.labels.policy, NAME);
});

test('errors are one typed line: policy not loaded, address in use, bad address', async () => {
  const cases: [string[], RegExp][] = [
    [['metrics', 'no-such-policy', '--once'], /^bpfctl: .*policy no-such-policy is not loaded/],
    [['metrics', NAME, '--listen', `127.0.0.1:${ports.run}`], new RegExp(`^bpfctl: .*cannot serve metrics on 127\\.0\\.0\\.1:${ports.run}: address in use \\(EADDRINUSE\\)`)],
    [['metrics', NAME, '--listen', 'nowhere'], /^bpfctl: .*metrics address 'nowhere' is not HOST:PORT/],
  ];
  for (const [args, want] of cases) {
    const r = await cli(...args);
    assert.is(r.code, 1, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, want);
    assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  const j = await cli('metrics', 'no-such-policy', '--once', '--json');
  assert.is(JSON.parse(j.stderr).code, 'E_NOT_LOADED');
});

test('the Node writer and the reader agree on a real mapped map; a reused route slot counts afresh', () => {
  const pinDir = join(ENV.BPFCTL_BPFFS, 'writer');
  mkdirSync(join(pinDir, 'maps'), { recursive: true });
  const map = BpfMap.create({ type: 'array', name: 'gw_stats', keySize: 4, valueSize: SLOT_SIZE, maxEntries: SLOTS, flags: BPF_F_MMAPABLE });
  try {
    map.pin(join(pinDir, 'maps', 'gw_stats'));
  } finally {
    map.close();
  }
  try {
    const w = GatewayStatsSlot.open(pinDir, 3);
    w.response(200);
    w.response(200);
    w.response(503);
    w.response(1000);
    w.latency(performance.now() - 2); // ~2 ms ago
    w.reply(9, 1);
    w.reply(9, 1);
    w.close();
    let [g] = readGateways(pinDir);
    assert.is(g!.instance, 3);
    assert.is(g!.engine, 'node');
    assert.is(g!.pid, process.pid);
    assert.equal([...g!.statuses], [
      [0, 1],
      [200, 2],
      [503, 1],
    ]);
    assert.is(g!.latency.reduce((a, b) => a + b, 0), 1);
    assert.is(g!.latency[LATENCY_BOUNDS.indexOf(0.0025)], 1, 'a 2 ms observation is in le=0.0025');
    assert.ok(g!.latencySum >= 0.002 && g!.latencySum < 1);
    assert.equal([...g!.routeReplies], [[9, [1, 2]]]);
    // A restarted gateway keeps its counters; slot 9 now holds version 4 of some route.
    const again = GatewayStatsSlot.open(pinDir, 3);
    again.response(200);
    again.reply(9, 4);
    again.close();
    [g] = readGateways(pinDir);
    assert.is(g!.statuses.get(200), 3);
    assert.equal([...g!.routeReplies], [[9, [4, 1]]]);
    assert.throws(() => GatewayStatsSlot.open(pinDir, SLOTS), /no stats slot/);
  } finally {
    unpinAll(pinDir);
    rmSync(pinDir, { recursive: true, force: true });
  }
});

test('XDP: every counted rule and the default action, with the packets that moved them', async () => {
  netns = createNetnsPair('m');
  const ir = lowerPolicy({
    name: XDP_NAME,
    xdp: [
      {
        interface: netns.ifB,
        default: 'drop',
        rules: [
          { name: 'open', match: { proto: 'udp', dport: 7001 }, action: 'pass' },
          { name: 'quiet', match: { proto: 'udp', dport: 7002 }, action: 'pass', count: false },
          { name: 'arp', match: { ethType: 'arp' }, action: 'pass' },
        ],
      },
    ],
  });
  const pdir = policyDir(XDP_NAME, ENV.BPFCTL_BPFFS);
  const d = deployXdp(ir, 0, pdir, { netns: netns.nsB });
  // What `bpfctl load` writes for an XDP-only policy.
  writeManifest(pdir, {
    manifestVersion: MANIFEST_VERSION,
    policy: XDP_NAME,
    schemaHash: ir.hash,
    layoutHash: 'xdp-only',
    createdAt: new Date().toISOString(),
    policyFile: null,
    cgroup: null,
    pins: { progs: [], maps: [], links: [] },
    xdp: [{ interface: d.interface, mode: d.mode, dir: d.dir }],
    ir,
  } as Manifest);
  const SENDER = 'import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(int(sys.argv[3])): s.sendto(b"x" * 32, (sys.argv[1], int(sys.argv[2])))\n';
  netns.exec(netns.nsA, 'python3', ['-c', SENDER, netns.ipB, '7001', '5']);
  netns.exec(netns.nsA, 'python3', ['-c', SENDER, netns.ipB, '7002', '4']);
  netns.exec(netns.nsA, 'python3', ['-c', SENDER, netns.ipB, '7009', '3']);

  const r = await cli('metrics', XDP_NAME, '--once', '--json');
  assert.is(r.code, 0, r.stderr);
  const all = JSON.parse(r.stdout) as { name: string; values: { labels: Record<string, string | number>; value: number }[] }[];
  const series = (name: string) => Object.fromEntries(all.find((m) => m.name === name)!.values.map((v) => [String(v.labels.rule ?? v.labels.reason), v.value]));
  const packets = series('bpfctl_xdp_rule_packets_total');
  assert.equal(Object.keys(packets).sort(), ['(default)', 'arp', 'open'], 'count: false has no series');
  assert.is(packets.open, 5);
  // 32 bytes of UDP payload + 8 UDP + 20 IPv4 + 14 Ethernet.
  assert.is(series('bpfctl_xdp_rule_bytes_total').open, 5 * 74);
  assert.ok(packets['(default)']! >= 3, `default counted the 3 to port 7009 (and whatever IPv6 chatter): ${packets['(default)']}`);
  assert.equal(series('bpfctl_xdp_parser_packets_total'), { malformed: 0, fragment: 0 });
  const interfaces = new Set(all.find((m) => m.name === 'bpfctl_xdp_rule_packets_total')!.values.map((v) => v.labels.interface));
  assert.equal([...interfaces], [netns.ifB]);
  // An XDP-only policy has no chain, pool or gateways: those metrics have no series.
  assert.equal(all.find((m) => m.name === 'bpfctl_gateway_responses_total')!.values, []);
  assert.equal(all.find((m) => m.name === 'bpfctl_route_requests_total')!.values, []);
  const text = await cli('metrics', XDP_NAME, '--once');
  assert.match(text.stdout, `bpfctl_xdp_rule_packets_total{interface="${netns.ifB}",rule="open",policy="${XDP_NAME}"} 5`);
  const check = promtool(text.stdout);
  assert.is(check.status, 0, check.output);
});

test('stopped cleanly: bpfctl metrics and bpfctl run exit 0 on SIGTERM; nothing leaks', async () => {
  const byName = (n: string) => procs.find((p) => p.name === n)!;
  assert.is(await stop(byName('bpfctl metrics')), 0, byName('bpfctl metrics').log.slice(-400));
  assert.is(await stop(byName('bpfctl run')), 0, byName('bpfctl run').log.slice(-400));
  await stop(byName('prometheus'));
  undeployXdp(policyDir(XDP_NAME, ENV.BPFCTL_BPFFS));
  unpinAll(policyDir(XDP_NAME, ENV.BPFCTL_BPFFS));
  netns?.destroy();
  netns = null;
  rmSync(promDir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: ROOTS }), []);
  removeOwnDirs(ROOTS);
});

test.run();
