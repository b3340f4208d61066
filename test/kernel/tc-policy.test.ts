/**
 * tc sections as a user runs them: a policy file with an egress and an ingress section on one end
 * of a veth pair between two namespaces, loaded, applied, changed and unloaded with the bpfctl CLI
 * (the commands that attach run inside the namespace, `nsenter --net`, as a user would run them),
 * with real UDP, TCP and ICMP from sockets in the namespaces. Asserts what arrives and what does
 * not, every rule's counters, VLAN tags the kernel keeps beside the data, live set changes, an
 * `apply` that swaps the program on the same tcx link while traffic flows (nothing slips through,
 * nothing is lost), sections added and removed by `apply`, `bpfctl run` with a chain and a tc
 * section, clean refusals, and that nothing stays attached or pinned afterwards.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { generateTc, HOOKS } from '../../src/codegen/xdp/index.ts';
import { listPolicies } from '../../src/deploy/policy.ts';
import { buildTcObject, listTcDeployments, tcDir } from '../../src/deploy/tc.ts';
import { lowerTcSections } from '../../src/ir/xdp.ts';
import { BpfLink } from '../../loader/index.ts';
import { TC_GOLDEN_SECTIONS } from '../golden/tc/sections.ts';
import { runCli as cli } from '../helpers/cli.ts';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair, type NetnsPair } from '../helpers/netns.ts';
import { sh } from '../helpers/sh.ts';

const test = suite('tc policy');
const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '../..');
const SOURCE_CLI = join(here, 'fixtures/bpfctl-source.ts');
const ID = `bpfctl-test-${process.pid}-tc`;
const ENV = {
  BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`,
  BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`,
  BPFCTL_RUN_DIR: `/tmp/${ID}-run`,
};
const NAME = 'tc-policy';
const RUN_NAME = 'tc-run';
const saved = Object.fromEntries(Object.keys(ENV).map((k) => [k, process.env[k]]));
let before: Snapshot;
let net: NetnsPair;
let dir: string;
/** Every helper process still running: a failed test must not leave one behind. */
const children = new Set<ChildProcess>();

const RECEIVER = `
import json, select, socket, sys
socks = {}
for p in [int(x) for x in sys.argv[1].split(',') if x]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20); s.bind(('0.0.0.0', p)); socks[s] = 'udp/%d' % p
for p in [int(x) for x in sys.argv[2].split(',') if x]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', p)); s.listen(16); socks[s] = 'tcp/%d' % p
counts = dict((k, 0) for k in socks.values())
conns = []
print('ready', flush=True)
while True:
    r, _, _ = select.select(list(socks) + conns + [sys.stdin], [], [], 0.2)
    if sys.stdin in r and not sys.stdin.readline():
        break
    for s in r:
        if s is sys.stdin: continue
        if s in socks:
            if socks[s].startswith('udp'): s.recv(4096)
            else: c, _ = s.accept(); conns.append(c)
            counts[socks[s]] += 1
        else:
            d = s.recv(4096)
            if d: s.sendall(d)
            else: conns.remove(s); s.close()
print(json.dumps(counts), flush=True)
`;

// dst port count [sport]: n datagrams of 32 bytes, from sport when given.
const UDP_SENDER = `
import socket, sys
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if len(sys.argv) > 4: s.bind(('0.0.0.0', int(sys.argv[4])))
for i in range(n): s.sendto(b'x' * 32, (dst, port))
`;

// One datagram per gap seconds until stdin closes; prints how many it sent.
const UDP_STREAM = `
import select, socket, sys
dst, port, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = 0
print('ready', flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], gap)
    if r and not sys.stdin.readline(): break
    s.sendto(b'x' * 32, (dst, port)); n += 1
print(n, flush=True)
`;

const TCP_CLIENT = `
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
    s.sendall(b'hello'); print('ok' if s.recv(16) == b'hello' else 'bad'); s.close()
except Exception as e:
    print('fail')
`;

// No ping(8) on every machine: ICMP echo over a raw socket, 1 s to answer each.
const PINGER = `
import os, select, socket, struct, sys, time
dst, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
ident, got = os.getpid() & 0xffff, 0
for seq in range(n):
    body = struct.pack('!BBHHH', 8, 0, 0, ident, seq) + b'bpfctl-ping!'
    body = body[:2] + struct.pack('!H', csum(body)) + body[4:]
    s.sendto(body, (dst, 0))
    end = time.time() + 1.0
    while time.time() < end:
        r, _, _ = select.select([s], [], [], end - time.time())
        if not r: break
        pkt = s.recv(2048); icmp = pkt[(pkt[0] & 15) * 4:]
        if icmp[0] == 0 and struct.unpack('!HH', icmp[4:8]) == (ident, seq):
            got += 1; break
print(got)
`;

const HTTP_POST = `
import sys, urllib.request
r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method='POST'), timeout=5)
print(r.status, r.read().decode())
`;

/**
 * VLAN-tagged UDP frames written to a packet socket: ifname vid dport count src-mac dst-mac
 * src-ip dst-ip. (This kernel has no 802.1Q devices, CONFIG_VLAN_8021Q unset: a raw frame is how
 * tagged traffic gets onto the veth.)
 */
const VLAN_SENDER = `
import socket, struct, sys
ifname, vid, dport, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
smac, dmac = [bytes.fromhex(m.replace(':', '')) for m in sys.argv[5:7]]
sip, dip = [socket.inet_aton(a) for a in sys.argv[7:9]]
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
payload = b'x' * 32
udp = struct.pack('!HHHH', 40000, dport, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, sip, dip)
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
frame = dmac + smac + struct.pack('!HHH', 0x8100, vid, 0x0800) + ip + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
refused = 0
for i in range(n):
    try: s.send(frame)
    except OSError as e:
        if e.errno != 105: raise
        refused += 1  # ENOBUFS: dropped at tc egress, and a packet socket is told so
print(refused)
`;
const VLAN = 10;
const macOf = (ns: string, ifname: string) => (JSON.parse(sh('ip', ['-n', ns, '-j', 'link', 'show', 'dev', ifname])) as { address: string }[])[0]!.address;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const inNs = (ns: string, script: string, ...args: (string | number)[]) => net.exec(ns, 'python3', ['-c', script, ...args.map(String)]);
const sendUdp = (from: string, to: string, port: number, n: number, sport?: number) => inNs(from, UDP_SENDER, to, port, n, ...(sport ? [sport] : []));
const tcpTry = (port: number) => inNs(net.nsA, TCP_CLIENT, net.ipB, port).trim();
const ping = (from: string, to: string, n = 3) => Number(inNs(from, PINGER, to, n).trim());

/** Starts a python helper in `ns` that prints 'ready' first and its result last, once stdin closes. */
function startHelper<T>(ns: string, script: string, args: (string | number)[]): Promise<{ stop: () => Promise<T> }> {
  const proc = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', script, ...args.map(String)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  let out = '';
  const done = new Promise<T>((res, rej) => {
    proc.on('close', () => {
      children.delete(proc);
      try {
        res(JSON.parse(out.trim().split('\n').pop() ?? '') as T);
      } catch {
        rej(new Error(`helper said: ${out}`));
      }
    });
  });
  done.catch(() => {}); // awaited by stop(); a test that failed earlier never does
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const stop = () => {
        proc.stdin!.end();
        return done;
      };
      if (out.startsWith('ready\n')) resolve({ stop });
    });
    proc.on('error', reject);
    proc.on('exit', () => reject(new Error(`helper exited before it was ready: ${out}`)));
  });
}

async function receiver(ns: string, udp: number[], tcp: number[] = []): Promise<{ stop: () => Promise<Record<string, number>> }> {
  const r = await startHelper<Record<string, number>>(ns, RECEIVER, [udp.join(','), tcp.join(',')]);
  return {
    stop: async () => {
      await sleep(200); // let the last datagrams land
      return r.stop();
    },
  };
}

/** `bpfctl ...args` as its own process inside network namespace `ns` (nsenter keeps bpffs, as design.md says). */
function bpfctlIn(ns: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '--import', 'tsx', SOURCE_CLI, ...args], { cwd: repo, env: { ...process.env, ...ENV }, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function mustIn(ns: string, ...args: string[]): string {
  const r = bpfctlIn(ns, ...args);
  assert.is(r.code, 0, `bpfctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

interface RuleJson {
  name: string;
  match: string;
  action: string;
  packets: number;
  bytes: number;
}
interface SectionJson {
  policy: string;
  hook: 'xdp' | 'tc';
  interface: string;
  direction?: string;
  progId: number;
  linkId: number;
  rules: RuleJson[];
  sets: { name: string; size: number }[];
  malformed: { packets: number };
}

async function status(policy = NAME): Promise<SectionJson[]> {
  const r = await cli('xdp', 'status', policy, '--json');
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SectionJson[];
}
const section = (all: SectionJson[], direction: string) => all.find((s) => s.hook === 'tc' && s.direction === direction)!;
const rule = (s: SectionJson, name: string) => s.rules.find((r) => r.name === name)!;
/** Ethernet + IPv4 + UDP + 32 bytes: skb->len at both tc hooks counts the Ethernet header. */
const FRAME = 14 + 20 + 8 + 32;

/**
 * The policy file, version by version. v1: both sections. v2: rule udp-7001 gone, udp-7007 added
 * (the egress program is replaced). v3: the ingress section gone.
 */
function policySource(v: 1 | 2 | 3): string {
  const egress = [
    ...(v === 1 ? ["drop({ proto: 'udp', dport: 7001 }, { name: 'udp-7001' })"] : []),
    "drop({ proto: 'udp', dport: set('blocked') }, { name: 'blocked-ports' })",
    "drop({ proto: 'udp', dport: 7005 }, { name: 'steady-drop' })",
    "drop({ proto: 'tcp', dport: 7101, tcpFlags: 'syn,!ack' }, { name: 'tcp-7101-syn' })",
    `drop({ vlan: ${VLAN}, proto: 'udp', dport: 7401 }, { name: 'vlan-7401' })`,
    ...(v >= 2 ? ["drop({ proto: 'udp', dport: 7007 }, { name: 'udp-7007' })"] : []),
  ];
  const ingress = `
    tcSection({
      interface: '${net.ifA}',
      direction: 'ingress',
      rules: [
        drop({ proto: 'udp', sport: 7300 }, { name: 'from-7300' }),
        drop({ vlan: ${VLAN}, proto: 'udp', dport: 7402 }, { name: 'vlan-7402' }),
      ],
    }),`;
  return `import { definePolicy, drop, set, tcSection } from 'bpfctl';

export default definePolicy({
  name: '${NAME}',
  tc: [
    tcSection({
      interface: '${net.ifA}',
      direction: 'egress',
      sets: { blocked: { type: 'port', elements: [7002] } },
      rules: [
        ${egress.join(',\n        ')},
      ],
    }),${v < 3 ? ingress : ''}
  ],
});
`;
}

const policyFile = () => join(dir, 'policy.ts');
const writePolicy = (v: 1 | 2 | 3) => writeFileSync(policyFile(), policySource(v));

test.before(() => {
  before = snapshot();
  Object.assign(process.env, ENV);
  net = createNetnsPair('t');
  dir = mkdtempSync(join(tmpdir(), `${ID}-`));
  // Neighbours resolved before any program runs, so the first datagrams are not held back.
  ping(net.nsA, net.ipB, 1);
});

test.after.each(() => {
  for (const p of children) p.kill();
});

test.after(() => {
  try {
    for (const name of [NAME, RUN_NAME]) if (existsSync(join(ENV.BPFCTL_BPFFS, name))) bpfctlIn(net.nsA, 'unload', name);
  } finally {
    net?.destroy();
    rmSync(dir, { recursive: true, force: true });
    rmSync(ENV.BPFCTL_BPFFS, { recursive: true, force: true });
    removeOwnDirs([ENV.BPFCTL_CGROUP_PARENT, ENV.BPFCTL_RUN_DIR]);
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('bpfctl load attaches both sections through tcx links, pinned per interface and direction', () => {
  writePolicy(1);
  const out = mustIn(net.nsA, 'load', policyFile());
  assert.ok(out.includes(`${net.ifA} (egress) ${net.ifA} (ingress)`), out);
  const pinDir = join(ENV.BPFCTL_BPFFS, NAME);
  for (const direction of ['egress', 'ingress'] as const) {
    const d = tcDir(pinDir, net.ifA, direction);
    for (const f of ['link', 'prog', 'maps/rule_stats', 'maps/xdp_stats']) assert.ok(existsSync(join(d, f)), `${direction}: ${f}`);
    const link = BpfLink.openPinned(join(d, 'link'));
    try {
      const info = link.info();
      assert.is(info.type, 'tcx');
      assert.is(info.attachType, `tcx_${direction}`);
    } finally {
      link.close();
    }
  }
  assert.ok(existsSync(join(tcDir(pinDir, net.ifA, 'egress'), 'maps/set_blocked')));
  assert.equal(
    listTcDeployments(pinDir).map((d) => d.direction),
    ['ingress', 'egress'],
  );
});

test('egress: UDP to a port and to a set port is dropped, a TCP SYN is refused, the rest passes, counters move', async () => {
  const r = await receiver(net.nsB, [7001, 7002, 7003], [7100, 7101]);
  sendUdp(net.nsA, net.ipB, 7001, 20);
  sendUdp(net.nsA, net.ipB, 7002, 20);
  sendUdp(net.nsA, net.ipB, 7003, 20);
  assert.is(tcpTry(7100), 'ok');
  assert.is(tcpTry(7101), 'fail');
  assert.is(ping(net.nsA, net.ipB), 3, 'ping passes both ways');
  assert.equal(await r.stop(), { 'udp/7001': 0, 'udp/7002': 0, 'udp/7003': 20, 'tcp/7100': 1, 'tcp/7101': 0 });

  const eg = section(await status(), 'egress');
  assert.equal([rule(eg, 'udp-7001').packets, rule(eg, 'udp-7001').bytes], [20, 20 * FRAME]);
  assert.equal([rule(eg, 'blocked-ports').packets, rule(eg, 'blocked-ports').bytes], [20, 20 * FRAME]);
  assert.ok(rule(eg, 'tcp-7101-syn').packets >= 1, 'the SYN to 7101 was dropped at egress');
  assert.is(rule(eg, 'steady-drop').packets, 0);
  // The 7003 datagrams, the TCP to 7100 and the pings went out through the default.
  assert.ok(rule(eg, '(default)').packets >= 20 + 4 + 3, `default ${rule(eg, '(default)').packets}`);
  assert.is(eg.malformed.packets, 0);
});

test('ingress: datagrams from source port 7300 never reach the socket, others do', async () => {
  const r = await receiver(net.nsA, [7310, 7311]);
  sendUdp(net.nsB, net.ipA, 7310, 15, 7300);
  sendUdp(net.nsB, net.ipA, 7311, 15, 7301);
  assert.is(ping(net.nsB, net.ipA), 3);
  assert.equal(await r.stop(), { 'udp/7310': 0, 'udp/7311': 15 });
  const ing = section(await status(), 'ingress');
  assert.equal([rule(ing, 'from-7300').packets, rule(ing, 'from-7300').bytes], [15, 15 * FRAME]);
  assert.ok(rule(ing, '(default)').packets >= 15 + 3);
});

test('VLAN: rules see the tag in the packet data at egress, and the one the kernel keeps beside it at ingress', async () => {
  const [macA, macB] = [macOf(net.nsA, net.ifA), macOf(net.nsB, net.ifB)];
  const send = (ns: string, ifname: string, vid: number, dport: number, n: number, macs: string[], ips: string[]) => Number(inNs(ns, VLAN_SENDER, ifname, vid, dport, n, ...macs, ...ips).trim());
  // Egress: a tagged frame written by nsA goes out of ifA with its tag in the data. A drop at
  // egress is the sender's error (ENOBUFS) for a packet socket.
  assert.is(send(net.nsA, net.ifA, VLAN, 7401, 10, [macA, macB], [net.ipA, net.ipB]), 10, 'every VLAN 10 frame refused');
  assert.is(send(net.nsA, net.ifA, VLAN + 1, 7401, 7, [macA, macB], [net.ipA, net.ipB]), 0, 'VLAN 11 goes out');
  // Ingress: the receiving stack takes the tag out of the data (skb->vlan_tci) before tc runs,
  // so only a program that reads it there sees VLAN 10 at all.
  send(net.nsB, net.ifB, VLAN, 7402, 10, [macB, macA], [net.ipB, net.ipA]);
  send(net.nsB, net.ifB, VLAN, 7404, 6, [macB, macA], [net.ipB, net.ipA]);
  send(net.nsB, net.ifB, VLAN + 1, 7402, 5, [macB, macA], [net.ipB, net.ipA]);
  await sleep(100);
  const all = await status();
  const eg = rule(section(all, 'egress'), 'vlan-7401');
  assert.is(eg.match, `vlan ${VLAN} ip udp dport 7401`);
  assert.equal([eg.packets, eg.bytes], [10, 10 * (FRAME + 4)], 'the tag is in the bytes at egress');
  const ing = rule(section(all, 'ingress'), 'vlan-7402');
  assert.equal([ing.packets, ing.bytes], [10, 10 * FRAME], 'at ingress the tag is metadata, not bytes');
});

test('bpfctl set add/del changes a tc set live, and says which hook it changed', async () => {
  const add = await cli('set', 'add', NAME, 'blocked', '7003', '--json');
  assert.is(add.code, 0, add.stderr);
  assert.equal(JSON.parse(add.stdout), [{ interface: net.ifA, hook: 'tc egress', set: 'blocked', type: 'port', added: 1, size: 2 }]);
  let r = await receiver(net.nsB, [7003]);
  sendUdp(net.nsA, net.ipB, 7003, 10);
  assert.equal(await r.stop(), { 'udp/7003': 0 });
  const ls = await cli('set', 'ls', NAME, 'blocked', '--hook', 'tc-egress', '--json');
  assert.equal(JSON.parse(ls.stdout)[0].elements, ['7002', '7003']);
  const none = await cli('set', 'ls', NAME, 'blocked', '--hook', 'tc-ingress');
  assert.is.not(none.code, 0);
  assert.match(none.stderr, /has no set 'blocked' at tc-ingress/);
  assert.is((await cli('set', 'del', NAME, 'blocked', '7003')).code, 0);
  r = await receiver(net.nsB, [7003]);
  sendUdp(net.nsA, net.ipB, 7003, 10);
  assert.equal(await r.stop(), { 'udp/7003': 10 });
});

test('bpfctl xdp status and bpfctl status show both sections', async () => {
  const human = await cli('xdp', 'status', NAME);
  assert.is(human.code, 0, human.stderr);
  for (const text of [`tc egress on ${net.ifA}`, `tc ingress on ${net.ifA}`, 'udp-7001', 'ip udp dport @blocked', 'from-7300', '(default)', 'tcx', 'malformed: 0 packets']) {
    assert.ok(human.stdout.includes(text), `${text} in\n${human.stdout}`);
  }
  const st = await cli('status', NAME);
  assert.is(st.code, 0, st.stderr);
  assert.ok(st.stdout.includes('tc (bpfctl xdp status for rules and counters)'), st.stdout);
  const all = await cli('xdp', 'status');
  assert.ok(all.stdout.includes(`tc egress on ${net.ifA}`), 'listed without a policy name too');
});

test('apply swaps the egress program on the same tcx link while traffic flows: nothing slips through, nothing is lost', async () => {
  const was = section(await status(), 'egress');
  const ingressWas = section(await status(), 'ingress');
  writePolicy(2);
  const diff = await cli('diff', policyFile());
  assert.is(diff.code, 0, diff.stderr);
  assert.ok(diff.stdout.includes(`~ tc ${net.ifA} egress`), diff.stdout);

  const r = await receiver(net.nsB, [7005, 7006]);
  // 7005 is dropped by both versions, 7006 passed by both: a moment without a program would let
  // 7005 through, a moment of the wrong verdicts would lose some of 7006.
  const drop = await startHelper<number>(net.nsA, UDP_STREAM, [net.ipB, 7005, 0.001]);
  const pass = await startHelper<number>(net.nsA, UDP_STREAM, [net.ipB, 7006, 0.001]);
  await sleep(300);
  const applied = bpfctlIn(net.nsA, 'apply', policyFile());
  await sleep(300);
  const sentDrop = await drop.stop();
  const sentPass = await pass.stop();
  const got = await r.stop();
  assert.is(applied.code, 0, applied.stderr);
  assert.ok(applied.stdout.includes('applied (XDP/tc programs swapped through their links)'), applied.stdout);
  assert.ok(sentDrop > 500 && sentPass > 500, `the streams ran through the apply (${sentDrop}, ${sentPass} sent)`);
  assert.equal(got, { 'udp/7005': 0, 'udp/7006': sentPass });

  const now = section(await status(), 'egress');
  assert.is(now.linkId, was.linkId, 'the same link: replaced with bpf_link_update');
  assert.is.not(now.progId, was.progId);
  assert.equal(
    now.rules.map((x) => x.name),
    ['blocked-ports', 'steady-drop', 'tcp-7101-syn', 'vlan-7401', 'udp-7007', '(default)'],
  );
  assert.is(section(await status(), 'ingress').progId, ingressWas.progId, 'the unchanged ingress section was left alone');
  // What the new rules say: 7001 passes now, 7007 is dropped.
  const r2 = await receiver(net.nsB, [7001, 7007]);
  sendUdp(net.nsA, net.ipB, 7001, 5);
  sendUdp(net.nsA, net.ipB, 7007, 5);
  assert.equal(await r2.stop(), { 'udp/7001': 5, 'udp/7007': 0 });
  assert.is(rule(section(await status(), 'egress'), 'udp-7007').packets, 5);
  const again = await cli('diff', policyFile(), '--json');
  assert.equal(JSON.parse(again.stdout).changes, [], 'the manifest records what was applied');
});

test('apply detaches a section the file no longer has, and attaches it again when it comes back', async () => {
  const ingressLink = section(await status(), 'ingress').linkId;
  writePolicy(3);
  mustIn(net.nsA, 'apply', policyFile());
  assert.equal(
    (await status()).map((s) => s.direction),
    ['egress'],
  );
  assert.throws(() => BpfLink.fromId(ingressLink).close(), /E_NOENT|no such|not found|ENOENT/i, 'the ingress link is gone');
  assert.not.ok(existsSync(tcDir(join(ENV.BPFCTL_BPFFS, NAME), net.ifA, 'ingress')));
  let r = await receiver(net.nsA, [7310]);
  sendUdp(net.nsB, net.ipA, 7310, 5, 7300);
  assert.equal(await r.stop(), { 'udp/7310': 5 });
  writePolicy(2);
  mustIn(net.nsA, 'apply', policyFile());
  r = await receiver(net.nsA, [7310]);
  sendUdp(net.nsB, net.ipA, 7310, 5, 7300);
  assert.equal(await r.stop(), { 'udp/7310': 0 });
});

test('bpfctl unload detaches both links and removes every pin; traffic passes unclassified', async () => {
  const links = (await status()).map((s) => s.linkId);
  assert.is(links.length, 2);
  const u = await cli('unload', NAME);
  assert.is(u.code, 0, u.stderr);
  for (const id of links) assert.throws(() => BpfLink.fromId(id).close(), undefined, `link ${id} is gone`);
  assert.not.ok(existsSync(join(ENV.BPFCTL_BPFFS, NAME)));
  const r = await receiver(net.nsB, [7005]);
  sendUdp(net.nsA, net.ipB, 7005, 5);
  assert.equal(await r.stop(), { 'udp/7005': 5 });
});

test('what tc cannot carry out is refused in one line naming the rule, and nothing is loaded', async () => {
  const bad = join(dir, 'bad.ts');
  writeFileSync(
    bad,
    `export default {
  name: 'tc-bad',
  tc: [
    {
      interface: '${net.ifA}',
      direction: 'egress',
      rules: [
        { match: { proto: 'udp', dport: 4789 }, action: { xsk: 'dpi' } },
        { match: { proto: 'udp', dport: 7 }, action: 'tx' },
      ],
    },
  ],
};
`,
  );
  const r = bpfctlIn(net.nsA, 'load', bad);
  assert.is.not(r.code, 0);
  const first = r.stderr.split('\n').find((l) => l.startsWith('bpfctl:')) ?? r.stderr;
  assert.match(first, /^bpfctl: policy tc-bad: tc\[0\]\.rules\[0\]\.action: a tc section cannot hand frames to AF_XDP sockets \(xsk 'dpi'\)/);
  assert.match(first, /and 1 more problem/);
  assert.ok(r.stderr.includes(`--> ${bad}:8:`), `points at the rule in the file: ${r.stderr}`);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  assert.not.ok(listPolicies().includes('tc-bad'));
  // An interface that is not there: refused by the kernel, explained, nothing left pinned.
  const missing = join(dir, 'missing.ts');
  writeFileSync(missing, "export default { name: 'tc-missing', tc: [{ interface: 'nosuch0', direction: 'ingress' }] };\n");
  const m = bpfctlIn(net.nsA, 'load', missing);
  assert.is.not(m.code, 0);
  assert.match(m.stderr, /nosuch0.*no such network interface/);
  assert.not.ok(existsSync(join(ENV.BPFCTL_BPFFS, 'tc-missing')), 'nothing half-loaded');
});

test('every golden tc section passes the verifier', () => {
  for (const [name, spec] of Object.entries(TC_GOLDEN_SECTIONS)) {
    const [s] = lowerTcSections([{ ...spec, interface: 'lo' }], 'tc');
    const tc = [{ ...s!, redirects: s!.redirects.map(() => 'lo') }];
    const o = buildTcObject({ name: `tc-golden-${name}`, xdp: [], tc }, 0);
    try {
      const p = o.program(HOOKS.tc.progName);
      assert.is(p.type, 'sched_cls', name);
    } finally {
      o.close();
    }
    assert.ok(generateTc({ name: 'x', xdp: [], tc }, 0).source.includes('SEC("tc")'));
  }
});

test('bpfctl run: a chain beside a tc section; apply through the supervisor swaps it; SIGTERM removes it all', async () => {
  const runDir = mkdtempSync(join(dir, 'run-'));
  writeFileSync(join(runDir, 'echo.ts'), 'export default function echo(req: { body: Uint8Array }): number {\n  return req.body.length;\n}\n');
  const source = (port: number) => `import { definePolicy, drop, tcSection } from 'bpfctl';
export default definePolicy({
  name: '${RUN_NAME}',
  functions: { echo: { instances: 1, handler: './echo.ts' } },
  routes: { '/echo': ['echo'] },
  pool: { bufferSize: 4096, bufferCount: 16 },
  tc: [tcSection({ interface: '${net.ifA}', direction: 'egress', rules: [drop({ proto: 'udp', dport: ${port} }, { name: 'run-${port}' })] })],
});
`;
  const file = join(runDir, 'policy.ts');
  writeFileSync(file, source(7501));
  const port = 21000 + (process.pid % 5000);
  const run = spawn('nsenter', [`--net=/run/netns/${net.nsA}`, process.execPath, '--import', 'tsx', SOURCE_CLI, 'run', file, '--port', String(port)], { cwd: repo, env: { ...process.env, ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(run);
  let log = '';
  run.stdout!.on('data', (b) => (log += b));
  run.stderr!.on('data', (b) => (log += b));
  const exited = new Promise((r) => run.once('exit', r));
  try {
    for (let i = 0; i < 600 && !log.includes(`127.0.0.1:${port}/echo`); i++) await sleep(100);
    assert.ok(log.includes(`127.0.0.1:${port}/echo`), `bpfctl run did not come up: ${log.slice(-800)}`);
    assert.is(inNs(net.nsA, HTTP_POST, `http://127.0.0.1:${port}/echo`, 'hi').trim(), '200 hi');
    let r = await receiver(net.nsB, [7501, 7502]);
    sendUdp(net.nsA, net.ipB, 7501, 5);
    sendUdp(net.nsA, net.ipB, 7502, 5);
    assert.equal(await r.stop(), { 'udp/7501': 0, 'udp/7502': 5 });

    writeFileSync(file, source(7502));
    const a = bpfctlIn(net.nsA, 'apply', file);
    assert.is(a.code, 0, a.stderr);
    assert.ok(a.stdout.includes('applied to the running chain'), a.stdout);
    r = await receiver(net.nsB, [7501, 7502]);
    sendUdp(net.nsA, net.ipB, 7501, 5);
    sendUdp(net.nsA, net.ipB, 7502, 5);
    assert.equal(await r.stop(), { 'udp/7501': 5, 'udp/7502': 0 });
    const s = section(await status(RUN_NAME), 'egress');
    assert.equal([rule(s, 'run-7502').packets, s.rules.length], [5, 2]);
    assert.is(inNs(net.nsA, HTTP_POST, `http://127.0.0.1:${port}/echo`, 'again').trim(), '200 again', 'the chain kept running');

    const link = s.linkId;
    run.kill('SIGTERM');
    await exited;
    assert.is(run.exitCode, 0, log.slice(-800));
    assert.throws(() => BpfLink.fromId(link).close(), undefined, 'the tcx link is gone with the chain');
    assert.not.ok(existsSync(join(ENV.BPFCTL_BPFFS, RUN_NAME)));
  } finally {
    if (run.exitCode === null) {
      run.kill('SIGTERM');
      await exited;
    }
    children.delete(run);
  }
});

test('leaves nothing behind', async () => {
  // What the suite's own cleanup would remove anyway: the pin root and the policy files.
  rmSync(dir, { recursive: true, force: true });
  removeOwnDirs([ENV.BPFCTL_BPFFS, ENV.BPFCTL_CGROUP_PARENT, ENV.BPFCTL_RUN_DIR]);
  const ns = net;
  ns.destroy();
  const leaks = await leaksSince(before);
  assert.equal(leaks, [], leaks.join('\n'));
});

test.run();
