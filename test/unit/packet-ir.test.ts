/**
 * Packet chains in the policy language: the DSL's types (a chain naming an unknown packet
 * function, a rule steering into an unknown chain, a chain rule at tc: type errors, checked by
 * `tsc --noEmit -p .`), the lowering to PacketIR (ids, ports, absolute paths), every validation
 * error with its exact path and message (for JavaScript callers the types never saw), the IR and
 * hash of policies without packet sections left exactly as they were, the reference model's
 * answer for a chain rule, and `bpfctl xdp explain` / `bpfctl graph` on a policy file.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import firewall from '../../examples/firewall/policy.ts';
import { definePolicy, pass, tcSection, toChain, toXsk, xdpSection } from '../../src/dsl/index.ts';
import { hashIR, lowerPolicy, PolicyError, type PolicyIR, type PolicyIssue } from '../../src/ir/policy.ts';
import { lowerXdpSections } from '../../src/ir/xdp.ts';
import { loadPolicyFile } from '../../src/load/index.ts';
import { compileModel } from '../../src/model/index.ts';
import { runCli } from '../helpers/cli.ts';
import { eth, ipv4, padded, tcp, udp } from '../helpers/packets.ts';

const test = suite('packet ir');
const DIR = '/srv/edge';

// biome-ignore lint/suspicious/noExplicitAny: specs are mutated freely to make them invalid
type Spec = Record<string, any>;

/** The design document's policy (docs/packet-chains.md), as plain data. */
const base = (): Spec => ({
  name: 'edge',
  pool: { bufferSize: 2048, bufferCount: 4096 },
  packetFunctions: {
    nat: { handler: './nf/snat.c', env: { SNAT_ADDR: '198.18.9.1' } },
    count: { handler: './nf/count.c', instances: 2 },
  },
  packetChains: {
    'tenant-nat': { functions: ['nat', 'count'], egress: { tx: 'veth-out' } },
  },
  xdp: [{ interface: 'veth-in', rules: [{ name: 'tenant', match: { proto: 'udp', dport: 4789 }, action: { chain: 'tenant-nat' } }, { action: 'pass' }] }],
});

/** Every problem lowerPolicy reports for `spec`. */
function problems(spec: unknown, baseDir: string | null = DIR): PolicyIssue[] {
  try {
    lowerPolicy(spec, baseDir === null ? {} : { baseDir });
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    return [...err.issues];
  }
  return [];
}

function edit(f: (s: Spec) => void): Spec {
  const s = base();
  f(s);
  return s;
}

test('the design example lowers to functions, chains and ports with ids in declaration order', () => {
  const ir = lowerPolicy(base(), { baseDir: DIR });
  assert.equal(ir.packet, {
    functions: [
      { id: 0, name: 'nat', language: 'c', handler: '/srv/edge/nf/snat.c', instances: 1, env: { SNAT_ADDR: '198.18.9.1' } },
      { id: 1, name: 'count', language: 'c', handler: '/srv/edge/nf/count.c', instances: 2, env: {} },
    ],
    chains: [{ id: 0, name: 'tenant-nat', functions: [0, 1], egress: { kind: 'tx', port: 1 }, poll: false }],
    ports: [
      { id: 0, interface: 'veth-in', ingress: true, egress: false },
      { id: 1, interface: 'veth-out', ingress: false, egress: true },
    ],
  });
  const s = ir.xdp[0]!;
  assert.equal(s.rules[0]!.action, { kind: 'chain', chain: 0, name: 'tenant-nat' });
  assert.is(s.rules[0]!.summary, 'ip udp dport 4789 -> chain tenant-nat (AF_XDP, xsk_chains)');
  assert.equal(s.xskGroups, ['chains']);
  // Plain data: JSON and back is the same IR.
  assert.equal(JSON.parse(JSON.stringify(ir)), ir);
});

test('coalesce: lowered as given; absent, the chain IR (and the hash) has no such field', () => {
  const plain = lowerPolicy(base(), { baseDir: DIR });
  assert.not.ok('coalesce' in plain.packet!.chains[0]!, 'absent stays absent');
  const spec = edit((s) => (s.packetChains['tenant-nat'].coalesce = { us: 200 }));
  const ir = lowerPolicy(spec, { baseDir: DIR });
  assert.equal(ir.packet!.chains[0], { id: 0, name: 'tenant-nat', functions: [0, 1], egress: { kind: 'tx', port: 1 }, poll: false, coalesce: { us: 200 } });
  assert.is.not(hashIR(ir), hashIR(plain), 'a coalescing chain is another policy');
  assert.equal(lowerPolicy(edit((s) => (s.packetChains['tenant-nat'].coalesce = { us: 10000 })), { baseDir: DIR }).packet!.chains[0]!.coalesce, { us: 10000 });
  assert.equal(lowerPolicy(edit((s) => Object.assign(s.packetChains['tenant-nat'], { poll: false, coalesce: { us: 1 } })), { baseDir: DIR }).packet!.chains[0]!.coalesce, { us: 1 });
});

test('ports: ingress sections first, then egress interfaces, once each; reflectors, empty chains, drop, poll, commands', () => {
  const ir = lowerPolicy(
    {
      name: 'p',
      packetFunctions: {
        dpi: { command: ['./bin/dpi', '--fast'], instances: 32, env: { RULES: '/etc/dpi.rules', EMPTY: '' } },
        nf: { command: ['dpdk-nf'] },
        abs: { handler: '/opt/nf/../nf2/./x.c' },
        unused: { handler: 'nf/unused.c' },
      },
      packetChains: {
        back: { functions: [], egress: { tx: 'eth1' } },
        out: { functions: ['dpi', 'nf', 'dpi'], egress: { tx: 'eth9' }, poll: true },
        sink: { functions: ['abs'], egress: 'drop' },
        never: { functions: [], egress: { tx: 'eth9' } },
      },
      xdp: [
        { interface: 'eth0', rules: [{ action: 'drop' }] },
        { interface: 'eth1', default: { chain: 'back' } },
        { interface: 'eth2', rules: [{ match: { proto: 'tcp' }, action: { chain: 'out' } }, { action: { xsk: 'mine' } }, { action: { chain: 'sink' } }] },
      ],
    },
    { baseDir: '/p' },
  );
  const p = ir.packet!;
  assert.equal(p.ports, [
    { id: 0, interface: 'eth1', ingress: true, egress: true },
    { id: 1, interface: 'eth2', ingress: true, egress: false },
    { id: 2, interface: 'eth9', ingress: false, egress: true },
  ]);
  assert.equal(
    p.chains.map((c) => [c.id, c.name, c.functions, c.egress, c.poll]),
    [
      [0, 'back', [], { kind: 'tx', port: 0 }, false],
      [1, 'out', [0, 1, 0], { kind: 'tx', port: 2 }, true],
      [2, 'sink', [2], { kind: 'drop' }, false],
      [3, 'never', [], { kind: 'tx', port: 2 }, false],
    ],
  );
  assert.equal(p.functions[0], { id: 0, name: 'dpi', language: 'command', command: ['/p/bin/dpi', '--fast'], instances: 32, env: { RULES: '/etc/dpi.rules', EMPTY: '' } });
  assert.equal(p.functions[1]!.command, ['dpdk-nf'], 'a bare name stays for PATH');
  assert.is(p.functions[2]!.handler, '/opt/nf2/x.c');
  assert.is(p.functions[3]!.handler, '/p/nf/unused.c', 'a function no chain uses is fine');
  assert.equal(ir.xdp.map((s) => s.xskGroups), [[], ['chains'], ['chains', 'mine']]);
  assert.equal(ir.xdp[1]!.default, { kind: 'chain', chain: 0, name: 'back' });
  // Without chains, packet functions alone still give the packet part (no ports).
  const fnOnly = lowerPolicy({ name: 'f', packetFunctions: { a: { handler: '/a.c' } }, xdp: [{ interface: 'eth0' }] });
  assert.equal(fnOnly.packet, { functions: [{ id: 0, name: 'a', language: 'c', handler: '/a.c', instances: 1, env: {} }], chains: [], ports: [] });
  // The handler's file decides the language: TypeScript and JavaScript run in the TypeScript packet runtime.
  const ts = lowerPolicy({ name: 'f', packetFunctions: { a: { handler: '/nf/a.ts' }, b: { handler: '/nf/b.mjs', instances: 2 } }, xdp: [{ interface: 'eth0' }] });
  assert.equal(
    ts.packet!.functions.map((f) => [f.name, f.language, f.handler, f.instances]),
    [
      ['a', 'ts', '/nf/a.ts', 1],
      ['b', 'ts', '/nf/b.mjs', 2],
    ],
  );
});

test('a policy without packet sections keeps its IR and hash exactly', () => {
  // Hashes computed by the bpfctl before packet chains existed (commit 8bdd1ee).
  assert.is(lowerPolicy(firewall).hash, 'e5347540b0068790718393f31f96f4139de22472628fd137264e20bf1056a6bc');
  const mixed = {
    name: 'edge',
    functions: { web: { instances: 2, handler: './web.ts' } },
    routes: { '/': ['web'] },
    pool: { bufferSize: 2048, bufferCount: 64 },
    xdp: [{ interface: 'veth-in', rules: [{ name: 'nat', match: { proto: 'udp' as const, dport: 4789 }, action: { xsk: 'tun' } }] }],
  };
  const ir = lowerPolicy(mixed);
  assert.is(ir.hash, '6ce566ea6b6c7d318ac7e730a8781b1d45b28c6a489a359a3064eeccdb2948b7');
  assert.not.ok('packet' in ir);
  // Empty packet sections are no packet sections.
  const empty = lowerPolicy({ ...mixed, packetFunctions: {}, packetChains: {} });
  assert.equal(empty, ir);
});

test('the DSL: names type-check against packetFunctions and packetChains; chain rules are XDP only', () => {
  const spec = definePolicy({
    name: 'typed',
    packetFunctions: { nat: { handler: './nat.c' }, dpi: { command: ['./dpi'], instances: 2 } },
    packetChains: { 'tenant-nat': { functions: ['nat', 'dpi'], egress: { tx: 'eth1' } }, sink: { functions: [], egress: 'drop', poll: true } },
    xdp: [
      xdpSection({ interface: 'eth0', sets: { ports: { type: 'port', elements: [4789] } }, rules: [toChain('tenant-nat', { proto: 'udp', dport: { set: 'ports' } }, { name: 't' }), pass()] }),
      xdpSection({ interface: 'eth2', default: { chain: 'sink' }, rules: [toXsk('cap', { proto: 'tcp' })] }),
    ],
  });
  assert.equal(lowerPolicy(spec, { baseDir: DIR }).xdp[0]!.rules[0]!.action, { kind: 'chain', chain: 0, name: 'tenant-nat' });
  definePolicy({
    name: 'typed',
    packetFunctions: { nat: { handler: './nat.c' } },
    // @ts-expect-error 'nta' is not one of the policy's packet functions
    packetChains: { c: { functions: ['nta'], egress: 'drop' } },
  });
  definePolicy({
    name: 'typed',
    packetFunctions: { nat: { handler: './nat.c' } },
    packetChains: { c: { functions: ['nat'], egress: 'drop' } },
    xdp: [
      // @ts-expect-error 'd' is not one of the policy's packet chains
      xdpSection({ interface: 'eth0', rules: [toChain('d')] }),
    ],
  });
  definePolicy({
    name: 'typed',
    packetFunctions: { nat: { handler: './nat.c' } },
    packetChains: { c: { functions: ['nat'], egress: 'drop' } },
    // @ts-expect-error the inline form is checked too
    xdp: [{ interface: 'eth0', rules: [{ action: { chain: 'd' } }] }],
  });
  // @ts-expect-error a handler or a command, not both
  definePolicy({ name: 'typed', packetFunctions: { nat: { handler: './nat.c', command: ['x'] } } });
  // @ts-expect-error egress is { tx } or 'drop'
  definePolicy({ name: 'typed', packetFunctions: { a: { handler: './a.c' } }, packetChains: { c: { functions: ['a'], egress: 'pass' } } });
  // @ts-expect-error a tc section cannot take a chain rule (AF_XDP is XDP only)
  tcSection({ interface: 'eth0', direction: 'ingress', rules: [toChain('c')] });
  // A policy without packetChains keeps accepting any section it accepted before.
  const pre: Parameters<typeof xdpSection>[0] = { interface: 'eth0', rules: [{ action: 'drop' }] };
  definePolicy({ name: 'typed', xdp: [pre] });
});

/** [case, spec, path, message]: each spec has exactly this one problem. */
const ERRORS: [string, () => unknown, string, string][] = [
  [
    'unknown packet function in a chain',
    () => edit((s) => (s.packetChains['tenant-nat'].functions[1] = 'cnt')),
    "packetChains['tenant-nat'].functions[1]",
    `packet chain 'tenant-nat' hop 1 names unknown packet function "cnt" (packetFunctions: nat, count)`,
  ],
  ['unknown chain in an xdp rule', () => edit((s) => (s.xdp[0].rules[0].action.chain = 'tenant')), 'xdp[0].rules[0].action.chain', 'unknown packet chain "tenant" (packetChains: tenant-nat)'],
  ['a chain rule in a policy without chains', () => ({ name: 'p', xdp: [{ interface: 'eth0', rules: [{ action: { chain: 'x' } }] }] }), 'xdp[0].rules[0].action.chain', 'unknown packet chain "x" (the policy declares no packetChains)'],
  ['a chain name that is not a string', () => edit((s) => (s.xdp[0].rules[0].action.chain = 7)), 'xdp[0].rules[0].action.chain', "a packet chain's name, got 7"],
  ['a chain action with another field', () => edit((s) => (s.xdp[0].rules[0].action.queue = 1)), 'xdp[0].rules[0].action.queue', "unknown field 'queue' (expected one of: chain)"],
  [
    'a chain rule at tc',
    () => edit((s) => (s.tc = [{ interface: 'veth-in', direction: 'ingress', rules: [{ action: { chain: 'tenant-nat' } }] }])),
    'tc[0].rules[0].action',
    'a tc section cannot steer frames into a packet chain (chain "tenant-nat"): chains take frames from AF_XDP sockets, at XDP only, so put this rule in an xdp section',
  ],
  [
    'a chain default at tc egress',
    () => edit((s) => (s.tc = [{ interface: 'veth-in', direction: 'egress', default: { chain: 'nope' } }])),
    'tc[0].default',
    'a tc section cannot steer frames into a packet chain (chain "nope"): chains take frames from AF_XDP sockets, at XDP only, so put this rule in an xdp section',
  ],
  [
    "the reserved AF_XDP group 'chains'",
    () => edit((s) => s.xdp[0].rules.splice(1, 0, { action: { xsk: 'chains' } })),
    'xdp[0].rules[1].action.xsk',
    "AF_XDP group 'chains' is reserved: its xskmap xsk_chains feeds the packet chains (toChain); pick another name",
  ],
  [
    'a packet function named like a function',
    () => edit((s) => Object.assign(s, { functions: { NAT: { instances: 1, handler: './nat.ts' } }, routes: { '/': ['NAT'] } })),
    'packetFunctions.nat',
    "duplicate function name 'nat' (also functions.NAT): functions and packetFunctions share one namespace, compared without case",
  ],
  [
    'two packet functions differing in case',
    () => edit((s) => (s.packetFunctions.Count = { handler: '/c.c' })),
    'packetFunctions.Count',
    "duplicate function name 'Count' (also packetFunctions.count): functions and packetFunctions share one namespace, compared without case",
  ],
  ['a name that is no C identifier', () => edit((s) => (s.packetFunctions['my-nf'] = { handler: '/c.c' })), "packetFunctions['my-nf']", "packet function name 'my-nf' must be a C identifier of at most 31 characters ([A-Za-z_][A-Za-z0-9_]*)"],
  ['a name too long for the plane', () => edit((s) => (s.packetFunctions[`f${'x'.repeat(31)}`] = { handler: '/c.c' })), `packetFunctions.f${'x'.repeat(31)}`, `packet function name 'f${'x'.repeat(31)}' must be a C identifier of at most 31 characters ([A-Za-z_][A-Za-z0-9_]*)`],
  ['a C keyword', () => edit((s) => (s.packetFunctions.switch = { handler: '/c.c' })), 'packetFunctions.switch', "packet function name 'switch' is a C keyword"],
  ['the gateway', () => edit((s) => (s.packetFunctions.Gateway = { handler: '/c.c' })), 'packetFunctions.Gateway', "packet function name 'Gateway' is reserved: function 0 of the request chain is the gateway"],
  [
    '33 packet functions',
    () => edit((s) => Object.assign(s.packetFunctions, Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`f${i}`, { handler: '/f.c' }])))),
    'packetFunctions',
    "too many packet functions: 33 (at most 32, the packet plane's function table)",
  ],
  [
    '65 chains',
    () => edit((s) => Object.assign(s.packetChains, Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`c${i}`, { functions: [], egress: 'drop' }])))),
    'packetChains',
    "too many packet chains: 65 (at most 64, the packet plane's chain table)",
  ],
  ['9 hops', () => edit((s) => (s.packetChains['tenant-nat'].functions = new Array(9).fill('nat'))), "packetChains['tenant-nat'].functions", "packet chain 'tenant-nat' has 9 functions (at most 8: the plane's hops[8])"],
  [
    '17 ports',
    () =>
      edit((s) => {
        for (let i = 0; i < 15; i++) s.packetChains[`c${i}`] = { functions: [], egress: { tx: `eth${i}` } };
      }),
    'packetChains.c14.egress.tx',
    "interface 'eth14' would be packet port 17: at most 16 interfaces receive or transmit packet chains' frames (the plane's port table)",
  ],
  ['instances 0', () => edit((s) => (s.packetFunctions.count.instances = 0)), 'packetFunctions.count.instances', 'instances must be between 1 and 32, got 0'],
  ['instances 33', () => edit((s) => (s.packetFunctions.count.instances = 33)), 'packetFunctions.count.instances', 'instances must be between 1 and 32, got 33'],
  ['instances 1.5', () => edit((s) => (s.packetFunctions.count.instances = 1.5)), 'packetFunctions.count.instances', 'instances must be an integer, got 1.5'],
  ['an env name in lower case', () => edit((s) => (s.packetFunctions.nat.env.snat_addr = 'x')), 'packetFunctions.nat.env.snat_addr', "environment variable name 'snat_addr' must be A-Z, 0-9 and '_', not starting with a digit"],
  ['an env name starting with a digit', () => edit((s) => (s.packetFunctions.nat.env['1X'] = 'x')), "packetFunctions.nat.env['1X']", "environment variable name '1X' must be A-Z, 0-9 and '_', not starting with a digit"],
  ["bpfctl's own env names", () => edit((s) => (s.packetFunctions.nat.env.BPFCTL_POOL = '/x')), 'packetFunctions.nat.env.BPFCTL_POOL', "environment variable 'BPFCTL_POOL' is reserved: bpfctl hands its own settings to packet functions in BPFCTL_* variables"],
  ['an env value that is a number', () => edit((s) => (s.packetFunctions.nat.env.PORT = 53)), 'packetFunctions.nat.env.PORT', 'environment variable PORT must be a string, got 53'],
  ['an env value with a NUL', () => edit((s) => (s.packetFunctions.nat.env.SNAT_ADDR = '198.18.9.1\0')), 'packetFunctions.nat.env.SNAT_ADDR', 'environment variable SNAT_ADDR holds a NUL character (the process environment cannot carry it)'],
  ['env that is not an object', () => edit((s) => (s.packetFunctions.nat.env = ['A=1'])), 'packetFunctions.nat.env', 'env must be an object of NAME -> string, got an array'],
  ['an egress interface name too long', () => edit((s) => (s.packetChains['tenant-nat'].egress.tx = 'veth-out-0123456')), "packetChains['tenant-nat'].egress.tx", `bad interface name "veth-out-0123456" (1..15 characters, no '/', ':' or spaces)`],
  ['an egress that is neither', () => edit((s) => (s.packetChains['tenant-nat'].egress = 'pass')), "packetChains['tenant-nat'].egress", `egress must be { tx: 'ifname' } (transmit after the last function) or 'drop', got "pass"`],
  ['no egress', () => edit((s) => delete s.packetChains['tenant-nat'].egress), "packetChains['tenant-nat'].egress", "egress must be { tx: 'ifname' } (transmit after the last function) or 'drop', got nothing"],
  ['an egress with another field', () => edit((s) => (s.packetChains['tenant-nat'].egress.queue = 0)), "packetChains['tenant-nat'].egress.queue", "unknown setting 'queue' (expected one of: tx)"],
  ['poll that is not a boolean', () => edit((s) => (s.packetChains['tenant-nat'].poll = 'yes')), "packetChains['tenant-nat'].poll", 'poll must be true (busy-poll) or false (sleep until frames come, the default), got "yes"'],
  ['coalesce that is a number', () => edit((s) => (s.packetChains['tenant-nat'].coalesce = 200)), "packetChains['tenant-nat'].coalesce", 'coalesce must be { us: N } (frames wait up to N microseconds to share a batch), got 200'],
  ['coalesce without us', () => edit((s) => (s.packetChains['tenant-nat'].coalesce = {})), "packetChains['tenant-nat'].coalesce", 'coalesce needs us: the longest a frame may wait, in microseconds (1..10000)'],
  ['coalesce.us 0', () => edit((s) => (s.packetChains['tenant-nat'].coalesce = { us: 0 })), "packetChains['tenant-nat'].coalesce.us", 'coalesce.us (microseconds) must be between 1 and 10000, got 0'],
  ['coalesce.us 20000', () => edit((s) => (s.packetChains['tenant-nat'].coalesce = { us: 20000 })), "packetChains['tenant-nat'].coalesce.us", 'coalesce.us (microseconds) must be between 1 and 10000, got 20000'],
  ['coalesce.us 1.5', () => edit((s) => (s.packetChains['tenant-nat'].coalesce = { us: 1.5 })), "packetChains['tenant-nat'].coalesce.us", 'coalesce.us (microseconds) must be an integer, got 1.5'],
  ['coalesce.us a string', () => edit((s) => (s.packetChains['tenant-nat'].coalesce = { us: '200' })), "packetChains['tenant-nat'].coalesce.us", 'coalesce.us (microseconds) must be an integer, got "200"'],
  ['an unknown coalesce setting', () => edit((s) => (s.packetChains['tenant-nat'].coalesce = { us: 200, frames: 8 })), "packetChains['tenant-nat'].coalesce.frames", "unknown setting 'frames' (expected one of: us)"],
  [
    'coalesce with poll',
    () => edit((s) => Object.assign(s.packetChains['tenant-nat'], { poll: true, coalesce: { us: 200 } })),
    "packetChains['tenant-nat'].coalesce",
    'coalesce saves wakeups, and a chain with poll: true has none to save (its functions spin): use one or the other',
  ],
  ['chain functions that are not an array', () => edit((s) => (s.packetChains['tenant-nat'].functions = 'nat')), "packetChains['tenant-nat'].functions", 'functions must be an array of packet function names (may be empty), got "nat"'],
  ['an unknown chain setting', () => edit((s) => (s.packetChains['tenant-nat'].hops = [])), "packetChains['tenant-nat'].hops", "unknown setting 'hops' (expected one of: functions, egress, poll, coalesce)"],
  ['a bad chain name', () => edit((s) => (s.packetChains['tenant nat'] = { functions: [], egress: 'drop' })), "packetChains['tenant nat']", "packet chain name 'tenant nat' must be 1-31 characters of A-Z, a-z, 0-9, '-', '_', starting with a letter or digit"],
  ['a chain that is not an object', () => edit((s) => (s.packetChains.x = ['nat'])), 'packetChains.x', "packet chain 'x' must be an object { functions, egress, poll?, coalesce? }, got an array"],
  ['packetChains that is not an object', () => edit((s) => (s.packetChains = [])), 'packetChains', 'packetChains must be an object of name -> { functions, egress, poll?, coalesce? }, got an array'],
  ['packetFunctions that is not an object', () => edit((s) => (s.packetFunctions = 'nat')), 'packetFunctions', 'packetFunctions must be an object of name -> { handler | command, instances?, env? }, got "nat"'],
  ['a packet function that is not an object', () => edit((s) => (s.packetFunctions.nat = './nf/snat.c')), 'packetFunctions.nat', `packet function 'nat' must be an object { handler | command, instances?, env? }, got "./nf/snat.c"`],
  ['an unknown packet function setting', () => edit((s) => (s.packetFunctions.nat.handlr = 'x')), 'packetFunctions.nat.handlr', "unknown setting 'handlr' (expected one of: handler, command, instances, env)"],
  ['pool bufferSize 8192', () => edit((s) => (s.pool.bufferSize = 8192)), 'pool.bufferSize', 'bufferSize must be 2048 or 4096 in a policy with packet chains, got 8192: the pool is the AF_XDP UMEM, one buffer per chunk, and the kernel takes chunks of 2048 or 4096 bytes'],
  ['pool bufferSize 1024', () => edit((s) => (s.pool.bufferSize = 1024)), 'pool.bufferSize', 'bufferSize must be 2048 or 4096 in a policy with packet chains, got 1024: the pool is the AF_XDP UMEM, one buffer per chunk, and the kernel takes chunks of 2048 or 4096 bytes'],
  ['handler and command', () => edit((s) => (s.packetFunctions.nat.command = ['nat'])), 'packetFunctions.nat', "packet function 'nat' gives both handler and command: a handler (C or TypeScript, built by bpfctl) or a prebuilt command, one of the two"],
  ['neither handler nor command', () => edit((s) => delete s.packetFunctions.nat.handler), 'packetFunctions.nat', "packet function 'nat' needs a handler (a .c file built with the packet runtime, or a .ts/.js file) or a command (a prebuilt program speaking the packet SDK)"],
  ['a handler that is neither C nor TypeScript', () => edit((s) => (s.packetFunctions.nat.handler = './nf/snat.so')), 'packetFunctions.nat.handler', 'handler must be a .c file (built with the packet runtime) or a .ts/.js file (the TypeScript packet runtime), got "./nf/snat.so"; a prebuilt program goes in command: [...]'],
  ['an empty handler', () => edit((s) => (s.packetFunctions.nat.handler = ' ')), 'packetFunctions.nat.handler', 'handler must be a non-empty path to a .c file (or a .ts/.js one), got " "'],
  ['an empty command', () => edit((s) => (s.packetFunctions.nat = { command: [] })), 'packetFunctions.nat.command', 'command must be a non-empty array (argv: the program, then its arguments), got an array'],
  ['a command without a program', () => edit((s) => (s.packetFunctions.nat = { command: [''] })), 'packetFunctions.nat.command[0]', "command[0] must be the program: a path relative to the policy, or a name on PATH, got \"\""],
  ['a command argument that is no string', () => edit((s) => (s.packetFunctions.nat = { command: ['nat', 5] })), 'packetFunctions.nat.command[1]', 'arguments must be strings without NUL characters, got 5'],
];

for (const [name, spec, path, message] of ERRORS) {
  test(`error: ${name}`, () => {
    assert.equal(problems(spec()), [{ path, message }]);
  });
}

test('error: relative paths need the policy directory; loadPolicyFile gives it', async () => {
  assert.equal(problems(base(), null), [
    { path: 'packetFunctions.nat.handler', message: "handler './nf/snat.c' is relative, and the policy's directory is not known (loadPolicyFile passes it; in code: lowerPolicy(spec, { baseDir }))" },
    { path: 'packetFunctions.count.handler', message: "handler './nf/count.c' is relative, and the policy's directory is not known (loadPolicyFile passes it; in code: lowerPolicy(spec, { baseDir }))" },
  ]);
  assert.equal(problems({ ...base(), packetFunctions: { nat: { command: ['bin/nat'] }, count: { command: ['count'] } } }, null), [
    { path: 'packetFunctions.nat.command[0]', message: "command[0] 'bin/nat' is relative, and the policy's directory is not known (loadPolicyFile passes it; in code: lowerPolicy(spec, { baseDir }))" },
  ]);
  assert.throws(() => lowerPolicy(base(), { baseDir: 'srv/edge' }), /baseDir must be an absolute directory/);
  const dir = mkdtempSync(join(tmpdir(), 'bpfctl-packet-ir-'));
  try {
    writeFileSync(join(dir, 'policy.ts'), `export default ${JSON.stringify(base())};\n`);
    const ir = await loadPolicyFile(join(dir, 'policy.ts'));
    assert.equal(
      ir.packet!.functions.map((f) => f.handler),
      [join(dir, 'nf/snat.c'), join(dir, 'nf/count.c')],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('errors: everything at once, each with its path; a broken chain is not also unknown to its rules', () => {
  const spec = edit((s) => {
    s.packetChains['tenant-nat'].functions = ['nat', 'nope'];
    s.packetFunctions.count.instances = 99;
    s.pool.bufferSize = 512;
    s.xdp[0].rules.push({ action: { chain: 'missing' } });
  });
  assert.equal(
    problems(spec).map((p) => p.path),
    ['packetFunctions.count.instances', "packetChains['tenant-nat'].functions[1]", 'xdp[0].rules[2].action.chain', 'pool.bufferSize'],
  );
  // A packet function that is broken does not make the chains naming it report unknown names.
  assert.equal(problems(edit((s) => (s.packetFunctions.nat = 5))).map((p) => p.path), ['packetFunctions.nat']);
  // Packet chains still need an xdp section, a chain or tc sections around them.
  assert.equal(problems({ name: 'p', packetFunctions: { a: { handler: '/a.c' } }, packetChains: { c: { functions: ['a'], egress: 'drop' } } }).map((p) => p.path), ['(policy)']);
  // The pool the policy did not give is the default one, 4 KiB buffers: fine.
  assert.equal(problems(edit((s) => delete s.pool)), []);
  // A reflector: the egress is the interface frames came in on.
  const reflect = lowerPolicy(edit((s) => (s.packetChains['tenant-nat'].egress.tx = 'veth-in')), { baseDir: DIR });
  assert.equal(reflect.packet!.ports, [{ id: 0, interface: 'veth-in', ingress: true, egress: true }]);
});

test('lowerXdpSections resolves chain names it is given (ids in list order)', () => {
  const [s] = lowerXdpSections([{ interface: 'lo', rules: [{ action: { chain: 'b' } }] }], 'xdp', ['a', 'b']);
  assert.equal(s!.rules[0]!.action, { kind: 'chain', chain: 1, name: 'b' });
  assert.throws(() => lowerXdpSections([{ interface: 'lo', rules: [{ action: { chain: 'c' } }] }], 'xdp', ['a', 'b']), /unknown packet chain "c" \(packetChains: a, b\)/);
});

test('property: any valid packet part lowers to ids in order, resolved hops and one port per interface', () => {
  const IFS = ['eth0', 'eth1', 'eth2', 'veth-a'];
  const arb = fc
    .record({
      nfns: fc.integer({ min: 1, max: 32 }),
      chains: fc.array(fc.record({ hops: fc.array(fc.nat(), { maxLength: 8 }), tx: fc.option(fc.constantFrom(...IFS)), poll: fc.boolean() }), { minLength: 1, maxLength: 64 }),
      steer: fc.array(fc.record({ iface: fc.constantFrom(...IFS), chain: fc.nat(), asDefault: fc.boolean() }), { maxLength: 4 }),
    })
    .map((r) => ({ ...r, steer: r.steer.filter((s, i) => r.steer.findIndex((t) => t.iface === s.iface) === i) }));
  fc.assert(
    fc.property(arb, (r) => {
      const names = Array.from({ length: r.nfns }, (_, i) => `nf${i}`);
      const chainNames = r.chains.map((_, i) => `chain-${i}`);
      const spec = {
        name: 'prop',
        packetFunctions: Object.fromEntries(names.map((n, i) => [n, i % 2 ? { command: [`./bin/${n}`] } : { handler: `./${n}.c`, instances: 1 + (i % 32) }])),
        packetChains: Object.fromEntries(r.chains.map((c, i) => [chainNames[i], { functions: c.hops.map((h) => names[h % r.nfns]), egress: c.tx ? { tx: c.tx } : 'drop', poll: c.poll }])),
        xdp: r.steer.map((s) => {
          const action = { chain: chainNames[s.chain % chainNames.length] };
          return s.asDefault ? { interface: s.iface, default: action } : { interface: s.iface, rules: [{ match: { proto: 'udp' }, action }] };
        }),
      };
      if (!spec.xdp.length) spec.xdp.push({ interface: 'eth0', rules: [] } as never);
      const ir: PolicyIR = lowerPolicy(spec, { baseDir: '/p' });
      const p = ir.packet!;
      assert.equal(
        p.functions.map((f) => [f.id, f.name]),
        names.map((n, i) => [i, n]),
      );
      for (const f of p.functions) assert.ok((f.handler ?? f.command![0]!).startsWith('/p/'));
      assert.equal(
        p.chains.map((c) => c.functions.map((id) => p.functions[id]!.name)),
        r.chains.map((c) => c.hops.map((h) => names[h % r.nfns])),
      );
      assert.equal(
        p.chains.map((c) => c.id),
        r.chains.map((_, i) => i),
      );
      const ifaces = p.ports.map((x) => x.interface);
      assert.is(new Set(ifaces).size, ifaces.length, 'one port per interface');
      assert.equal(
        p.ports.map((x) => x.id),
        ifaces.map((_, i) => i),
      );
      for (const [i, c] of p.chains.entries()) {
        const tx = r.chains[i]!.tx;
        assert.equal(c.egress, tx ? { kind: 'tx', port: ifaces.indexOf(tx) } : { kind: 'drop' });
      }
      const ingress = new Set(r.steer.map((s) => s.iface));
      const egress = new Set(r.chains.flatMap((c) => (c.tx ? [c.tx] : [])));
      for (const x of p.ports) assert.equal([x.ingress, x.egress], [ingress.has(x.interface), egress.has(x.interface)], x.interface);
      // Ingress interfaces come first, in section order.
      assert.equal(ifaces.slice(0, ingress.size), [...ingress]);
      assert.equal(JSON.parse(JSON.stringify(ir)), ir);
    }),
    { numRuns: 300, seed: 11 },
  );
});

test('property: whatever the packet sections hold, lowering gives an IR or a PolicyError, never another error', () => {
  const anything = fc.anything({ maxDepth: 3, withNullPrototype: true, withSparseArray: true, withBigInt: true });
  fc.assert(
    fc.property(anything, anything, fc.constantFrom('packetFunctions', 'packetChains', 'nat', 'chain', 'egress', 'env', 'command'), (a, b, where) => {
      const spec = base();
      if (where === 'packetFunctions' || where === 'packetChains') spec[where] = a;
      else if (where === 'nat') spec.packetFunctions.nat = a;
      else if (where === 'chain') spec.xdp[0].rules[0].action = { chain: a };
      else if (where === 'egress') spec.packetChains['tenant-nat'].egress = a;
      else if (where === 'env') spec.packetFunctions.nat.env = { A: a, B: b };
      else spec.packetFunctions.count = { command: [a, b] };
      try {
        lowerPolicy(spec, { baseDir: DIR });
      } catch (err) {
        if (!(err instanceof PolicyError)) throw err;
        for (const i of err.issues) assert.ok(i.path.length > 0 && i.message.length > 0 && !i.message.includes('\n'), JSON.stringify(i));
      }
    }),
    { numRuns: 500, seed: 7 },
  );
});

test('the model: a chain rule drops while pktio is not bound, redirects when it is, and says where', () => {
  const ir = lowerPolicy(base(), { baseDir: DIR });
  const frame = padded(eth({}, ipv4({}, udp({ dport: 4789 }))));
  const unbound = compileModel(ir.xdp[0]!).run(frame);
  assert.equal([unbound.hit.kind, unbound.verdict.name, unbound.verdict.value], ['rule', 'XDP_DROP', 1]);
  assert.is(unbound.verdict.note, 'no pktio socket in xsk_chains assumed on queue 0: dropped, not passed (XDP_REDIRECT when pktio is bound)');
  assert.equal(unbound.counters, [{ map: 'rule_stats', slot: 0, name: 'tenant', packets: 1, bytes: 60 }]);
  const bound = compileModel(ir.xdp[0]!, { xskBound: (g, q) => g === 'chains' && q === 2, rxQueue: 2 }).run(frame);
  assert.equal([bound.verdict.name, bound.verdict.note], ['XDP_REDIRECT', "to pktio's socket on queue 2, tagged with chain id 0"]);
  // Another queue has no socket: dropped again.
  assert.is(compileModel(ir.xdp[0]!, { xskBound: (_g, q) => q === 2, rxQueue: 1 }).run(frame).verdict.name, 'XDP_DROP');
  assert.is(compileModel(ir.xdp[0]!).run(padded(eth({}, ipv4({}, tcp({ dport: 80 }))))).verdict.name, 'XDP_PASS');
  assert.throws(() => compileModel(ir.xdp[0]!, { hook: 'tc' }), /the tc hook cannot chain tenant-nat \(AF_XDP, xsk_chains\)/);
});

test('bpfctl xdp explain and bpfctl graph on a policy file with packet chains', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bpfctl-packet-ir-'));
  try {
    mkdirSync(join(dir, 'nf'));
    const file = join(dir, 'policy.ts');
    writeFileSync(file, `export default ${JSON.stringify(base(), null, 2)};\n`);
    const frame = Buffer.from(padded(eth({}, ipv4({}, udp({ dport: 4789 }))))).toString('hex');
    const r = await runCli('xdp', 'explain', file, frame);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /\n {2}rule 0 {6}tenant: ip udp dport 4789 -> chain tenant-nat \(AF_XDP, xsk_chains\)\n/);
    assert.match(r.stdout, /\n {2}verdict {5}XDP_DROP \(1\): chain tenant-nat \(AF_XDP, xsk_chains\); no pktio socket in xsk_chains assumed on queue 0: dropped, not passed \(XDP_REDIRECT when pktio is bound\)\n/);
    assert.match(r.stdout, /\n {2}counters {4}rule_stats\[0\] \(tenant\) \+1 packet \+60 bytes\n$/);
    const g = await runCli('graph', file, '--format', 'mermaid');
    assert.is(g.code, 0, g.stderr);
    assert.match(g.stdout, /\n\tsubgraph pc0\["packet chain tenant-nat"\]\n\t\tpc0_h0\["nat"\]\n\t\tpc0_h1\["count<br\/>x2"\]\n\t\tpc0_out>"out of veth-out"\]\n\tend\n/);
    assert.match(g.stdout, /\n\txdp0_out_chain_tenant_nat -->\|"AF_XDP"\| pc0_h0\n/);
    // A policy error in the file points at its line.
    writeFileSync(file, `export default ${JSON.stringify(edit((s) => (s.packetChains['tenant-nat'].functions[1] = 'cnt')), null, 2)};\n`);
    const bad = await runCli('xdp', 'explain', file, frame);
    assert.is(bad.code, 1);
    assert.match(bad.stderr, /packetChains\['tenant-nat'\]\.functions\[1\]: packet chain 'tenant-nat' hop 1 names unknown packet function "cnt"/);
    assert.match(bad.stderr, /policy\.ts:\d+:\d+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
