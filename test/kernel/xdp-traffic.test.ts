/**
 * XDP on a real veth pair between two network namespaces: real UDP, TCP and ICMP from nsA to
 * nsB, with the program on nsB's end. Asserts what arrives, what is dropped, every rule's
 * counters, live set changes, an atomic program swap under load, AF_XDP delivery of one flow
 * class to a copy-mode socket, clean failure, and that nothing stays attached afterwards.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { XdpSectionSpec } from '../../src/dsl/xdp.ts';
import { deployXdp, undeployXdp, XdpDeployError, xdpDir } from '../../src/deploy/xdp.ts';
import { changeSet, readSet } from '../../src/deploy/xdp-sets.ts';
import { readSectionCounters } from '../../src/deploy/xdp-stats.ts';
import { lowerXdpSections } from '../../src/ir/xdp.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair, type NetnsPair } from '../helpers/netns.ts';
import { sh } from '../helpers/sh.ts';

const test = suite('xdp traffic');
// Taken when the suite starts, not at import: uvu imports every test file (and tsx starts its
// compiler service) before running any of them.
let before: Snapshot;
const root = `/sys/fs/bpf/bpfctl-test-${process.pid}`;
const pinDir = join(root, 'xdp-traffic');
const here = dirname(fileURLToPath(import.meta.url));
let net: NetnsPair;
/** Receivers still running: a failed test must not leave its ports bound for the next one. */
const receivers = new Set<ChildProcess>();
let buildDir: string;

const RECEIVER = `
import json, select, socket, sys
socks = {}
for p in [int(x) for x in sys.argv[1].split(',') if x]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', p)); socks[s] = 'udp/%d' % p
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

const UDP_SENDER = `
import socket, sys, time
dst, port, n, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b'x' * 32, (dst, port))
    if gap: time.sleep(gap)
`;

// No ping(8) on every machine: ICMP echo over a raw socket, one request per 0.2 s, 1 s to answer.
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
    time.sleep(0.2)
print(got)
`;

const TCP_CLIENT = `
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
    s.sendall(b'hello'); print('ok' if s.recv(16) == b'hello' else 'bad'); s.close()
except Exception as e:
    print('fail')
`;

function section(ifname: string, v: 1 | 2): XdpSectionSpec {
  return {
    interface: ifname,
    default: 'drop',
    sets: { blocked: { type: 'ipv4-prefix' }, open: { type: 'port', elements: [7001] } },
    rules: [
      { name: 'blocked', match: { src: { set: 'blocked' } }, action: 'drop' },
      { name: 'udp-drop', match: { proto: 'udp', dport: 7002 }, action: 'drop' },
      { name: 'udp-open', match: { proto: 'udp', dport: { set: 'open' } }, action: 'pass' },
      { name: 'ping', match: { proto: 'icmp', icmpType: 'echo-request' }, action: 'pass' },
      { name: 'tcp-ok', match: { proto: 'tcp', dport: 7100 }, action: 'pass' },
      { name: 'tcp-drop', match: { proto: 'tcp', dport: 7101 }, action: 'drop' },
      { name: 'to-xsk', match: { proto: 'udp', dport: 7200 }, action: { xsk: 'cap' } },
      { name: 'arp', match: { ethType: 'arp' }, action: 'pass' },
      { name: 'icmpv6', match: { proto: 'icmpv6' }, action: 'pass' },
      // Version 2 opens 7003 too: shows which program is running after a swap.
      ...(v === 2 ? [{ name: 'udp-7003', match: { proto: 'udp' as const, dport: 7003 }, action: 'pass' as const }] : []),
    ],
  };
}

function policy(v: 1 | 2, extra: Partial<XdpSectionSpec> = {}) {
  return { name: 'xdp-traffic', xdp: lowerXdpSections([{ ...section(net.ifB, v), ...extra }], 'xdp') };
}

function startReceiver(udp: number[], tcp: number[]): Promise<{ proc: ChildProcess; done: Promise<Record<string, number>> }> {
  const proc = spawn('ip', ['netns', 'exec', net.nsB, 'python3', '-c', RECEIVER, udp.join(','), tcp.join(',')], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const done = new Promise<Record<string, number>>((res, rej) => {
      proc.on('close', () => {
        receivers.delete(proc);
        const last = out.trim().split('\n').pop() ?? '';
        try {
          res(JSON.parse(last));
        } catch {
          rej(new Error(`receiver said: ${out}`));
        }
      });
    });
    done.catch(() => {}); // awaited by stopReceiver; a test that failed earlier never does
    receivers.add(proc);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) resolve({ proc, done });
    });
    proc.on('error', reject);
    proc.on('exit', () => reject(new Error(`receiver exited before it was ready: ${out}`)));
  });
}

async function stopReceiver(r: { proc: ChildProcess; done: Promise<Record<string, number>> }): Promise<Record<string, number>> {
  await sleep(200); // let the last datagrams land
  r.proc.stdin!.end();
  return r.done;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sendUdp = (port: number, n: number, gap = 0) => net.exec(net.nsA, 'python3', ['-c', UDP_SENDER, net.ipB, String(port), String(n), String(gap)]);
const sendUdpAsync = (port: number, n: number, gap: number) =>
  new Promise<void>((res, rej) => {
    const p = spawn('ip', ['netns', 'exec', net.nsA, 'python3', '-c', UDP_SENDER, net.ipB, String(port), String(n), String(gap)], { stdio: 'ignore' });
    p.on('exit', (code) => (code === 0 ? res() : rej(new Error(`sender exited ${code}`))));
  });
const tcpTry = (port: number) => net.exec(net.nsA, 'python3', ['-c', TCP_CLIENT, net.ipB, String(port)]).trim();
const ping = (n = 3) => Number(net.exec(net.nsA, 'python3', ['-c', PINGER, net.ipB, String(n)]).trim()) === n;
const xdpOnIfB = () => JSON.parse(sh('ip', ['-n', net.nsB, '-d', '-j', 'link', 'show', 'dev', net.ifB]))[0].xdp as { mode: number; prog: { id: number } } | undefined;

test.before(() => {
  before = snapshot();
  net = createNetnsPair('x');
  buildDir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-xsk-`));
  // Warm up ARP/ND before any program is attached so first packets are not resolution-delayed.
  ping(1);
});

test.after.each(() => {
  for (const p of receivers) p.kill();
});

function cleanup(): void {
  try {
    undeployXdp(pinDir);
  } finally {
    net?.destroy();
    rmSync(buildDir, { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
  }
}

// uvu swallows errors thrown by hooks, so the leak check is the last test; the hook only makes
// sure a failed run cleans up too.
test.after(cleanup);

test('deploy, then UDP/TCP/ICMP meet the rules, and every counter says so', async () => {
  const d = deployXdp(policy(1), 0, pinDir, { netns: net.nsB });
  assert.is(d.mode, 'native', 'veth supports native XDP');
  assert.is(d.replaced, false);
  assert.is(d.dir, xdpDir(pinDir, net.ifB));
  for (const f of ['link', 'prog', 'maps/rule_stats', 'maps/xdp_stats', 'maps/set_blocked', 'maps/set_open', 'maps/xsk_cap']) assert.ok(existsSync(join(d.dir, f)), f);
  assert.is(xdpOnIfB()?.prog.id, d.progId);

  const r = await startReceiver([7001, 7002, 7003], [7100, 7101]);
  sendUdp(7001, 20);
  sendUdp(7002, 20);
  sendUdp(7003, 20);
  assert.ok(ping(3), 'ping passes');
  assert.is(tcpTry(7100), 'ok');
  assert.is(tcpTry(7101), 'fail');
  const got = await stopReceiver(r);
  assert.equal(got, { 'udp/7001': 20, 'udp/7002': 0, 'udp/7003': 0, 'tcp/7100': 1, 'tcp/7101': 0 });

  const c = readSectionCounters(d.dir);
  const byName = (n: string) => c.rules[policy(1).xdp[0]!.rules.find((x) => x.name === n)!.index]!;
  const frame = 14 + 20 + 8 + 32; // Ethernet + IPv4 + UDP + payload
  assert.equal(byName('udp-open'), { packets: 20n, bytes: BigInt(20 * frame) });
  assert.equal(byName('udp-drop'), { packets: 20n, bytes: BigInt(20 * frame) });
  assert.is(byName('ping').packets, 3n + 1n * 0n);
  assert.ok(byName('tcp-ok').packets >= 4n, `tcp-ok ${byName('tcp-ok').packets}`); // SYN, ACK, data, FIN at least
  assert.ok(byName('tcp-drop').packets >= 1n, 'the SYN to 7101 was dropped');
  assert.is(byName('blocked').packets, 0n);
  assert.is(byName('to-xsk').packets, 0n);
  assert.ok(c.default.packets >= 20n, `default ${c.default.packets}`); // the 7003 datagrams
  assert.is(c.stats.malformed.packets, 0n);
});

test('set changes apply at once, without a reload', () => {
  const dir = xdpDir(pinDir, net.ifB);
  const progBefore = xdpOnIfB()?.prog.id;
  assert.equal(changeSet(dir, 'blocked', 'add', [`${net.ipA.split('.').slice(0, 3).join('.')}.0/24`]), { kind: 'ipv4-prefix', changed: 1 });
  assert.is(ping(2), false, 'blocked source cannot ping');
  assert.equal(changeSet(dir, 'blocked', 'del', [`${net.ipA.split('.').slice(0, 3).join('.')}.0/24`]), { kind: 'ipv4-prefix', changed: 1 });
  assert.ok(ping(2), 'unblocked again');
  changeSet(dir, 'open', 'add', [7003]);
  assert.equal(readSet(dir, 'open').elements, ['7001', '7003']);
  changeSet(dir, 'open', 'del', [7003]);
  assert.is(xdpOnIfB()?.prog.id, progBefore, 'same program throughout');
});

test('redeploy swaps the program atomically under load (no window without a program)', async () => {
  const old = deployXdp(policy(1), 0, pinDir, { netns: net.nsB });
  assert.is(old.replaced, true);
  const r = await startReceiver([7002, 7003], []);
  // 7002 is dropped by both versions: with any gap between them, some datagrams would arrive.
  const load = sendUdpAsync(7002, 600, 0.002);
  await sleep(200);
  const d = deployXdp(policy(2), 0, pinDir, { netns: net.nsB });
  await load;
  sendUdp(7003, 10);
  const got = await stopReceiver(r);
  assert.equal(got, { 'udp/7002': 0, 'udp/7003': 10 }, 'nothing slipped through; version 2 runs');
  assert.is(d.replaced, true);
  assert.is(d.linkId, old.linkId, 'same link');
  assert.is.not(d.progId, old.progId, 'new program');
  assert.is(xdpOnIfB()?.prog.id, d.progId);
  // The new program starts with fresh counters; the one of the new rule counted the 10 datagrams.
  const c = readSectionCounters(d.dir);
  assert.is(c.rules[9]!.packets, 10n);
});

test('redeploy resets sets to the policy unless asked to keep them', () => {
  const dir = xdpDir(pinDir, net.ifB);
  changeSet(dir, 'open', 'add', [7004]);
  deployXdp(policy(2), 0, pinDir, { netns: net.nsB, keepSets: true });
  assert.equal(readSet(dir, 'open').elements, ['7001', '7004']);
  deployXdp(policy(2), 0, pinDir, { netns: net.nsB });
  assert.equal(readSet(dir, 'open').elements, ['7001']);
});

test('an AF_XDP socket in copy mode receives its flow class', async () => {
  const bin = join(buildDir, 'xsk-recv');
  execFileSync('cc', ['-O2', '-o', bin, join(here, 'xdp-xsk-recv.c'), '-lxdp', '-lbpf']);
  const dir = deployXdp(policy(1), 0, pinDir, { netns: net.nsB }).dir;
  const helper = spawn('nsenter', [`--net=/run/netns/${net.nsB}`, bin, net.ifB, '0', join(dir, 'maps', 'xsk_cap'), '10', '5000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  helper.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number>((res) => helper.on('exit', (code) => res(code ?? -1)));
  await new Promise<void>((res, rej) => {
    helper.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) res();
    });
    helper.on('exit', () => rej(new Error(`xsk helper: ${err}`)));
  });
  const r = await startReceiver([7200, 7001], []);
  sendUdp(7200, 10, 0.01);
  sendUdp(7001, 5);
  const code = await exited;
  const got = await stopReceiver(r);
  assert.is(code, 0, `xsk helper failed: ${err}\n${out}`);
  const frames = out.split('\n').filter((l) => l.startsWith('frame '));
  assert.is(frames.length, 10);
  for (const f of frames) assert.is(f, 'frame 74 7200');
  assert.equal(got, { 'udp/7200': 0, 'udp/7001': 5 }, 'the AF_XDP class bypassed the stack; the rest did not');
  const c = readSectionCounters(dir);
  assert.is(c.rules[6]!.packets, 10n);
});

test('a failed deploy leaves the running program alone', () => {
  const running = xdpOnIfB()?.prog.id;
  const bad = policy(1, { rules: [{ match: { proto: 'udp' }, action: { redirect: 'nosuchif0' } }] });
  assert.throws(() => deployXdp(bad, 0, pinDir, { netns: net.nsB }), (e: unknown) => e instanceof XdpDeployError && /nosuchif0/.test((e as Error).message));
  assert.is(xdpOnIfB()?.prog.id, running);
  // On an interface with nothing attached, nothing gets attached either.
  const other = { name: 'xdp-traffic', xdp: lowerXdpSections([{ interface: net.ifA, rules: [{ action: { redirect: 'nosuchif0' } }] }], 'xdp') };
  assert.throws(() => deployXdp(other, 0, pinDir, { netns: net.nsA }));
  assert.is(JSON.parse(sh('ip', ['-n', net.nsA, '-d', '-j', 'link', 'show', 'dev', net.ifA]))[0].xdp, undefined);
  assert.not.ok(existsSync(xdpDir(pinDir, net.ifA)));
});

test('an interface that went away and came back gets a fresh attachment', () => {
  const mk = () => sh('ip', ['-n', net.nsB, 'link', 'add', 'xdpt0', 'type', 'veth', 'peer', 'name', 'xdpt1']);
  const up = () => sh('ip', ['-n', net.nsB, 'link', 'set', 'xdpt0', 'up']);
  mk();
  up();
  try {
    const ir = { name: 'xdp-traffic', xdp: lowerXdpSections([{ interface: 'xdpt0', rules: [{ action: 'pass' }] }], 'xdp') };
    const first = deployXdp(ir, 0, pinDir, { netns: net.nsB });
    sh('ip', ['-n', net.nsB, 'link', 'del', 'xdpt0']);
    mk();
    up();
    const again = deployXdp(ir, 0, pinDir, { netns: net.nsB });
    assert.is(again.replaced, false);
    assert.is.not(again.linkId, first.linkId);
    const xdp = JSON.parse(sh('ip', ['-n', net.nsB, '-d', '-j', 'link', 'show', 'dev', 'xdpt0']))[0].xdp;
    assert.is(xdp?.prog?.id, again.progId);
    assert.equal(undeployXdp(pinDir, 'xdpt0'), ['xdpt0']);
  } finally {
    sh('ip', ['-n', net.nsB, 'link', 'del', 'xdpt0'], { allowFail: true });
  }
});

test('generic mode on request, and undeploy detaches and unpins', () => {
  undeployXdp(pinDir);
  assert.is(xdpOnIfB(), undefined);
  const d = deployXdp(policy(1), 0, pinDir, { netns: net.nsB, mode: 'generic' });
  assert.is(d.mode, 'generic');
  assert.is(xdpOnIfB()?.mode, 2);
  assert.ok(ping(2));
  assert.equal(undeployXdp(pinDir), [net.ifB]);
  assert.is(xdpOnIfB(), undefined);
  assert.not.ok(existsSync(join(pinDir, 'xdp')));
});

test('leaves nothing behind', async () => {
  // Undeploy is what is under test; the namespaces, build dir and pin root are this file's own
  // fixtures, removed only after the check so that nothing they held is freed with them first.
  undeployXdp(pinDir);
  const leaks = await leaksSince(before, { ownDirs: [root, pinDir], fixtures: [net.nsA, net.nsB, buildDir] });
  assert.equal(leaks, [], leaks.join('\n'));
  cleanup();
  const after = await leaksSince(before);
  assert.equal(after, [], after.join('\n'));
});

test.run();
