/**
 * The classifier's chain action on the real kernel. BPF_PROG_TEST_RUN of the golden packet-chain
 * program (test/golden/xdp/chains.bpf.c): the verifier accepts it, a steered frame comes out with
 * the metadata word 0xBFC70000 | chain id in front of it and the verdict XDP_DROP (no socket
 * bound: fail closed), other frames get their rule or the default, the counters move, and the
 * reference model agrees on every one. Long sections (the rules in functions) too. Then real
 * traffic over a veth pair: an AF_XDP socket in the deployed xsk_chains gets the steered frames,
 * each with its chain's word, and once it is gone they are dropped, not passed to the stack.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { XDP_PROG_NAME } from '../../src/codegen/xdp/index.ts';
import { buildXdpObject, deployXdp, undeployXdp, xdpDir } from '../../src/deploy/xdp.ts';
import { readCounter, readSectionCounters } from '../../src/deploy/xdp-stats.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';
import { lowerXdpSections, type XdpSectionIR } from '../../src/ir/xdp.ts';
import { compileModel } from '../../src/model/index.ts';
import type { BpfObject } from '../../loader/index.ts';
import { EDGE, EDGE_DIR } from '../golden/packet/edge.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair, type NetnsPair } from '../helpers/netns.ts';
import { eth, ipv4, ipv6, padded, tcp, udp, XDP } from '../helpers/packets.ts';

const test = suite('xdp chain');
let before: Snapshot;
const here = dirname(fileURLToPath(import.meta.url));
const TAG = 0xbfc70000;

const edge = lowerPolicy(EDGE, { baseDir: EDGE_DIR });
/** The golden sections, on lo (test runs need an interface that exists only to load). */
const onLo = (s: XdpSectionIR): XdpSectionIR => ({ ...s, interface: 'lo' });
const objs: BpfObject[] = [];

const v4 = (o: Parameters<typeof ipv4>[0], l4?: Parameters<typeof ipv4>[1]) => padded(eth({}, ipv4(o, l4)));
const word = (data: Uint8Array) => new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);

test.before(() => {
  before = snapshot();
});

test.after(() => {
  for (const o of objs.splice(0)) o.close();
});

interface Case {
  name: string;
  frame: Uint8Array;
  verdict: keyof typeof XDP;
  /** The chain id the frame must carry in front of it; null: no metadata. */
  chain: number | null;
  /** The rule_stats slot that counts it; null: none (an uncounted rule). */
  slot: number | null;
}

function runCases(obj: BpfObject, s: XdpSectionIR, cases: Case[]): void {
  const prog = obj.program(XDP_PROG_NAME);
  const model = compileModel(s);
  for (const c of cases) {
    const slots = Array.from({ length: s.rules.length + 1 }, (_, i) => readCounter(obj.map('rule_stats'), i).packets);
    const r = prog.testRun(c.frame);
    assert.is(r.retval, XDP[c.verdict], `${c.name}: verdict ${r.retval}`);
    // BPF_PROG_TEST_RUN hands back the frame from data_meta on: the word, then the frame unchanged.
    if (c.chain === null) {
      assert.is(r.data.length, c.frame.length, `${c.name}: no metadata`);
      assert.equal([...r.data], [...c.frame], `${c.name}: frame unchanged`);
    } else {
      assert.is(r.data.length, c.frame.length + 4, `${c.name}: a 4-byte metadata word`);
      assert.is(word(r.data), (TAG | c.chain) >>> 0, `${c.name}: 0x${word(r.data).toString(16)}`);
      assert.equal([...r.data.subarray(4)], [...c.frame], `${c.name}: frame unchanged behind the word`);
    }
    const moved = slots.map((n, i) => readCounter(obj.map('rule_stats'), i).packets - n);
    assert.equal(moved, slots.map((_, i) => (i === c.slot ? 1n : 0n)), `${c.name}: counters`);
    // The reference model says the same: verdict and the counter that moves.
    const o = model.run(c.frame);
    assert.is(o.verdict.value, r.retval, `${c.name}: model verdict ${o.verdict.name}`);
    assert.equal(
      o.counters.filter((x) => x.map === 'rule_stats').map((x) => x.slot),
      c.slot === null ? [] : [c.slot],
      `${c.name}: model counters`,
    );
    if (c.chain !== null) assert.ok(o.action?.kind === 'chain' && o.action.chain === c.chain, `${c.name}: model action`);
  }
}

test('the golden program: verified, steered frames tagged and dropped with no socket bound, the rest as their rules say', () => {
  const s = onLo(edge.xdp[0]!);
  const obj = buildXdpObject({ name: 'xdpchain-golden', xdp: [s] }, s);
  objs.push(obj);
  runCases(obj, s, [
    { name: 'tenant UDP 4789', frame: v4({ src: '198.18.0.7' }, udp({ dport: 4789 })), verdict: 'drop', chain: 0, slot: 0 },
    { name: 'UDP 4789 from elsewhere: default', frame: v4({ src: '198.18.1.7' }, udp({ dport: 4789 })), verdict: 'pass', chain: null, slot: 5 },
    { name: 'SMTP', frame: v4({}, tcp({ dport: 25 })), verdict: 'drop', chain: 1, slot: 1 },
    { name: 'SMTP over IPv6', frame: padded(eth({}, ipv6({}, tcp({ dport: 25 })))), verdict: 'drop', chain: 1, slot: 1 },
    { name: 'echo (an uncounted rule)', frame: v4({}, udp({ dport: 7 })), verdict: 'drop', chain: 2, slot: null },
    { name: 'discard', frame: v4({}, udp({ dport: 9 })), verdict: 'drop', chain: null, slot: 3 },
    { name: 'web', frame: v4({}, tcp({ dport: 80 })), verdict: 'pass', chain: null, slot: 4 },
    { name: 'ARP: default', frame: padded(eth({ type: 0x0806 }, new Uint8Array(28))), verdict: 'pass', chain: null, slot: 5 },
  ]);
});

test('a default that steers into a chain', () => {
  const s = onLo(edge.xdp[1]!);
  const obj = buildXdpObject({ name: 'xdpchain-default', xdp: [s] }, s);
  objs.push(obj);
  runCases(obj, s, [
    { name: 'ARP passes', frame: padded(eth({ type: 0x0806 }, new Uint8Array(28))), verdict: 'pass', chain: null, slot: 0 },
    { name: 'anything else: chain inspect', frame: v4({}, udp({ dport: 53 })), verdict: 'drop', chain: 1, slot: 1 },
  ]);
});

test('long sections: chain rules inside the rule functions verify and tag', () => {
  const chains = Array.from({ length: 64 }, (_, i) => `c${i}`);
  const rules = Array.from({ length: 300 }, (_, i) =>
    i % 5 === 0 ? { name: `chain-${i}`, match: { proto: 'udp' as const, dport: 10000 + i }, action: { chain: chains[i % 64]! } } : { name: `drop-${i}`, match: { proto: 'udp' as const, dport: 10000 + i }, action: 'drop' as const },
  );
  const [s] = lowerXdpSections([{ interface: 'lo', rules }], 'xdp', chains);
  const obj = buildXdpObject({ name: 'xdpchain-long', xdp: [s!] }, s!);
  objs.push(obj);
  runCases(obj, s!, [
    { name: 'rule 0', frame: v4({}, udp({ dport: 10000 })), verdict: 'drop', chain: 0, slot: 0 },
    { name: 'rule 135 (second function)', frame: v4({}, udp({ dport: 10135 })), verdict: 'drop', chain: 135 % 64, slot: 135 },
    { name: 'rule 295 (third function)', frame: v4({}, udp({ dport: 10295 })), verdict: 'drop', chain: 295 % 64, slot: 295 },
    { name: 'rule 296', frame: v4({}, udp({ dport: 10296 })), verdict: 'drop', chain: null, slot: 296 },
    { name: 'default', frame: v4({}, udp({ dport: 9 })), verdict: 'pass', chain: null, slot: 300 },
  ]);
});

// ---------------------------------------------------------------------------------------------
// Real traffic.

const root = `/sys/fs/bpf/bpfctl-test-${process.pid}-chain`;
const pinDir = join(root, 'xdpchain');
let net: NetnsPair | undefined;
let buildDir: string | undefined;
const procs = new Set<ChildProcess>();

const UDP_SENDER = `
import socket, sys
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b'x' * 32, (dst, port))
`;

// Counts what reaches the stack on each port until stdin closes.
const RECEIVER = `
import json, select, socket, sys
socks = {}
for p in [int(x) for x in sys.argv[1].split(',')]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', p)); socks[s] = str(p)
counts = dict((k, 0) for k in socks.values())
print('ready', flush=True)
while True:
    r, _, _ = select.select(list(socks) + [sys.stdin], [], [], 0.2)
    if sys.stdin in r and not sys.stdin.readline():
        break
    for s in r:
        if s is not sys.stdin:
            s.recv(4096); counts[socks[s]] += 1
print(json.dumps(counts), flush=True)
`;

/** Starts `cmd` in nsB; resolves when it printed `ready`, with its output so far and its exit. */
function startInB(cmd: string[], stdin: 'pipe' | 'ignore'): Promise<{ proc: ChildProcess; out: () => string; exited: Promise<number> }> {
  const proc = spawn('nsenter', [`--net=/run/netns/${net!.nsB}`, ...cmd], { stdio: [stdin, 'pipe', 'pipe'] });
  procs.add(proc);
  let out = '';
  let err = '';
  const exited = new Promise<number>((res) =>
    proc.on('exit', (code) => {
      procs.delete(proc);
      res(code ?? -1);
    }),
  );
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((res, rej) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) res({ proc, out: () => out, exited });
    });
    void exited.then((code) => rej(new Error(`${cmd[0]} exited ${code} before it was ready: ${err}${out}`)));
  });
}

const send = (port: number, n: number) => net!.exec(net!.nsA, 'python3', ['-c', UDP_SENDER, net!.ipB, String(port), String(n)]);

test('real traffic: the socket in xsk_chains gets each steered frame with its chain word; without it they are dropped', async () => {
  net = createNetnsPair('c');
  buildDir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-chain-`));
  const bin = join(buildDir, 'xdp-chain-recv');
  execFileSync('cc', ['-O2', '-Wall', '-o', bin, join(here, 'xdp-chain-recv.c'), '-lxdp', '-lbpf']);
  const ir = lowerPolicy({
    name: 'xdpchain',
    packetFunctions: { nf: { command: ['nf'] } },
    packetChains: { a: { functions: ['nf'], egress: 'drop' }, b: { functions: [], egress: { tx: net.ifB } } },
    xdp: [
      {
        interface: net.ifB,
        rules: [
          { name: 'to-a', match: { proto: 'udp', dport: 7300 }, action: { chain: 'a' } },
          { name: 'to-b', match: { proto: 'udp', dport: 7301 }, action: { chain: 'b' } },
        ],
      },
    ],
  });
  const d = deployXdp(ir, 0, pinDir, { netns: net.nsB });
  const map = join(xdpDir(pinDir, net.ifB), 'maps', 'xsk_chains');
  assert.ok(existsSync(map), 'deploy pins xsk_chains with the section');

  const rx = await startInB(['python3', '-c', RECEIVER, '7300,7301,7302'], 'pipe');
  const xsk = await startInB([bin, net.ifB, '0', map, '10', '5000'], 'ignore');
  send(7300, 5);
  send(7301, 5);
  send(7302, 3);
  const code = await xsk.exited;
  assert.is(code, 0, xsk.out());
  const frames = xsk
    .out()
    .split('\n')
    .filter((l) => l.startsWith('frame '))
    .sort();
  assert.equal(frames, [...Array(5).fill('frame 74 7300 bfc70000'), ...Array(5).fill('frame 74 7301 bfc70001')]);

  // The socket is gone: steered frames are dropped (and counted), the rest still reach the stack.
  send(7300, 4);
  send(7302, 2);
  await new Promise((r) => setTimeout(r, 300));
  rx.proc.stdin!.end();
  await rx.exited;
  const got = JSON.parse(rx.out().trim().split('\n').pop()!) as Record<string, number>;
  assert.equal(got, { 7300: 0, 7301: 0, 7302: 5 }, 'steered frames never reached the stack');
  const c = readSectionCounters(d.dir);
  assert.equal([c.rules[0]!.packets, c.rules[1]!.packets], [9n, 5n]);
});

function cleanup(): void {
  for (const p of procs) p.kill('SIGKILL');
  try {
    if (existsSync(pinDir)) undeployXdp(pinDir);
  } finally {
    net?.destroy();
    net = undefined;
    if (buildDir) rmSync(buildDir, { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
  }
}

test('leaves nothing behind', async () => {
  for (const o of objs.splice(0)) o.close();
  cleanup();
  const leaks = await leaksSince(before);
  assert.equal(leaks, [], leaks.join('\n'));
});

test.run();
