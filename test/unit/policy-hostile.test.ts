/**
 * lowerPolicy on any input returns an IR (plain JSON data) or throws PolicyError: never another
 * error, never a hang. The hand-written cases are the ones a fuzz run found (sparse arrays,
 * cycles, BigInts); the property runs fast-check over >= 100,000 generated specs, mostly
 * policy-shaped (so the checks deep inside are reached) with hostile values mixed in at every
 * level: holes, cycles, BigInts, symbols, functions, getters and proxy traps that throw, revoked
 * proxies, keys such as `__proto__` and `toString`, huge arrays.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { lowerPolicy, PolicyError } from '../../src/ir/policy.ts';

const test = suite('lowerPolicy on hostile input');

const RUNS = Number(process.env.BPFCTL_FUZZ_RUNS ?? 100_000);

/** What the property holds: an IR that survives JSON unchanged, or a PolicyError with string paths. */
function judge(spec: unknown): 'ir' | 'error' {
  let ir: unknown;
  try {
    ir = lowerPolicy(spec);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw new Error(`not a PolicyError: ${(err as Error)?.stack ?? String(err)}`);
    if (err.issues.length === 0) throw new Error('a PolicyError without issues');
    for (const i of err.issues) if (typeof i.path !== 'string' || typeof i.message !== 'string') throw new Error('an issue without a string path and message');
    return 'error';
  }
  const text = JSON.stringify(ir);
  assert.equal(JSON.parse(text), ir, 'the IR is plain JSON data');
  return 'ir';
}

const valid = () => ({
  name: 'p',
  functions: { a: { instances: 1, handler: './a.ts' } },
  routes: { '/a': ['a'] },
});

function throwingGetter(key: string): Record<string, unknown> {
  return Object.defineProperty({}, key, {
    enumerable: true,
    get() {
      throw new Error(`getter ${key}`);
    },
  });
}

function revoked(): object {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

test('the cases a fuzz run found', () => {
  // biome-ignore lint/suspicious/noSparseArray: the holes are what is tested
  const sparse = [, { interface: 'eth0' }];
  const cyc: Record<string, unknown> = { ...valid() };
  cyc.pool = cyc;
  const cases: unknown[] = [
    // biome-ignore lint/suspicious/noSparseArray: the holes are what is tested
    { name: 'p', xdp: [,] },
    { name: 'p', xdp: sparse },
    { ...valid(), routes: { '/a': new Array(3) } },
    // biome-ignore lint/suspicious/noSparseArray: the holes are what is tested
    { ...valid(), routes: { '/a': ['a', , 'a'] } },
    cyc,
    { ...valid(), pool: { bufferSize: 4096n, bufferCount: 1 } },
    { ...valid(), name: 1n },
    { name: 'p', xdp: [{ interface: 'eth0', rules: [{ match: { dport: 22n }, action: 'drop' }] }] },
    throwingGetter('name'),
    { ...valid(), functions: throwingGetter('a') },
    new Proxy(valid(), {
      ownKeys() {
        throw new Error('ownKeys');
      },
    }),
    new Proxy(valid(), {
      get() {
        throw new Error('get');
      },
    }),
    new Proxy(valid(), {
      getPrototypeOf() {
        throw new Error('getPrototypeOf');
      },
    }),
    revoked(),
    { ...valid(), functions: revoked() },
    { ...valid(), routes: { '/a': Object.defineProperty([], 0, { get: () => { throw new Error('element'); }, enumerable: true }) } },
    { ...valid(), functions: { a: { instances: 1, handler: Symbol('h') } } },
    { ...valid(), functions: { a: { instances: 1, handler: () => './a.ts' } } },
    JSON.parse('{"name":"p","functions":{"a":{"instances":1,"handler":"./a.ts"}},"routes":{"/a":["a"]},"__proto__":{"x":1}}'),
    { name: 'p', xdp: [{ interface: 'eth0', rules: [{ match: { proto: 'constructor', tcpFlags: { toString: true } }, action: 'drop' }] }] },
    { name: 'p', xdp: [{ interface: 'eth0', rules: [{ match: { proto: 'icmp', icmpType: 'constructor' }, action: 'drop' }] }] },
    { name: 'p', xdp: [{ interface: 'eth0', rules: [{ match: { ethType: 'toString' }, action: 'drop' }] }] },
    { ...valid(), routes: { '/a': ['toString'] } },
    { ...valid(), routes: { '/a': new Array(2 ** 32 - 1) } },
    { name: 'p', xdp: [{ interface: 'eth0', rules: new Array(5) }] },
    { name: 'p', xdp: [{ interface: 'eth0', rules: [{ match: { src: { toString: 'x' } }, action: { redirect: { valueOf: 1 } } }] }] },
    Object.create(null),
    Object.assign(Object.create(null), valid()),
    (() => {
      let deep: Record<string, unknown> = {};
      const top = deep;
      for (let i = 0; i < 100_000; i++) deep = deep.x = {};
      return { ...valid(), pool: top };
    })(),
  ];
  for (const c of cases) judge(c);
  assert.is(judge(valid()), 'ir');
  assert.is(judge(Object.assign(Object.create(null), valid())), 'ir', 'a null-prototype object is plain data too');
});

test('sparse routes are refused at validation, with the hole named', () => {
  try {
    lowerPolicy({ ...valid(), routes: { '/a': new Array(3) } });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, PolicyError);
    assert.equal(
      (err as PolicyError).issues.map((i) => i.path),
      ["routes['/a'][0]", "routes['/a'][1]", "routes['/a'][2]"],
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Generators.

/**
 * Hostile values are generated as recipes and built by `realize` inside the property: fast-check
 * itself inspects generated values (cloning, printing), and a revoked proxy would break it first.
 */
class Recipe {
  constructor(readonly kind: string) {}
}
const HOSTILE: Record<string, () => unknown> = {
  bigint: () => 12n,
  symbol: () => Symbol('s'),
  function: () => () => 1,
  getter: () => throwingGetter('x'),
  revoked: () => revoked(),
  ownKeys: () =>
    new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('ownKeys');
        },
      },
    ),
  getTrap: () =>
    new Proxy(
      { a: 1 },
      {
        get() {
          throw new Error('get');
        },
      },
    ),
  arrayGetter: () => Object.defineProperty([], 0, { get: () => { throw new Error('element'); }, enumerable: true }),
  holes: () => new Array(3),
  // biome-ignore lint/suspicious/noSparseArray: the holes are what is tested
  sparse: () => [, 'a', ,],
  nullProto: () => Object.create(null),
  protoKey: () => JSON.parse('{"__proto__":1}'),
  toStringKey: () => ({ toString: 'x', valueOf: 'y' }),
  date: () => new Date(0),
  map: () => new Map([[1, 2]]),
  bytes: () => new Uint8Array(3),
  // The longest array there is (dictionary-backed, so cheap to make).
  huge: () => new Array(2 ** 32 - 1),
};
const hostileLeaf: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...Object.keys(HOSTILE)).map((k) => new Recipe(k)),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0, 2 ** 53, -1, 1.5, 1e300),
);

/** Builds the recipes of a generated value (a fresh copy: fast-check may shrink the original). */
const built = new WeakSet<object>();
function realize(v: unknown): unknown {
  if (v instanceof Recipe) return HOSTILE[v.kind]!();
  if (Array.isArray(v)) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) if (i in v) out[i] = realize(v[i]);
    return out;
  }
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) Object.defineProperty(out, k, { value: realize((v as Record<string, unknown>)[k]), enumerable: true, writable: true, configurable: true });
    built.add(out);
    return out;
  }
  return v;
}

const keyPool = fc.constantFrom('a', 'b', 'toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf', 'name', 'set', '', '/a', '1x', 'a-b');
const primitive = fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(undefined), fc.constant(null));

/** Any JSON-like value with hostile values mixed in. */
const junk: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    { arbitrary: primitive, weight: 5 },
    { arbitrary: hostileLeaf, weight: 2 },
    { arbitrary: fc.array(tie('v'), { maxLength: 4 }), weight: 1 },
    { arbitrary: fc.dictionary(keyPool, tie('v'), { maxKeys: 4 }), weight: 1 },
  ),
})).v;

/** `good` most of the time, otherwise junk: the checks behind the first one get reached. */
const mostly = <T,>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ arbitrary: good, weight: 4 }, { arbitrary: junk, weight: 1 });
const maybe = <T,>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined, freq: 2 });

const fnName = fc.constantFrom('a', 'b', 'upper', 'gateway', 'int', '1x', 'toString', 'A');
const fnSpec = fc.record(
  {
    instances: mostly(fc.integer({ min: -1, max: 70 })),
    handler: mostly(fc.constantFrom('./a.ts', '', ' ', './b.c')),
    language: maybe(mostly(fc.constantFrom('ts', 'c', 'js'))),
    maxInFlight: maybe(mostly(fc.integer({ min: 0, max: 5000 }))),
    extra: maybe(junk),
  },
  { requiredKeys: ['instances', 'handler'] },
);
const hops = fc.array(mostly(fnName), { maxLength: 5 }).chain((a) => fc.constantFrom(a, Object.assign(new Array(a.length + 1), a)));
const route = fc.oneof(hops, fc.record({ functions: mostly(hops), methods: maybe(mostly(fc.array(fc.constantFrom('GET', 'post', 'PUT', 'BREW', 1), { maxLength: 3 }))) }));

const portVal = fc.oneof(fc.integer({ min: -1, max: 70000 }), fc.tuple(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 70000 })), fc.constantFrom('80', '1-1024', '9-1', 'x'), fc.record({ set: fc.constantFrom('ports', 'nets', 'macs', 'nope', 'bad') }));
const addrVal = fc.oneof(fc.constantFrom('10.0.0.0/8', '192.0.2.1', 'fd00::/8', '::1', '1.2.3.4/33', 'x', '10.0.0.0/8/8'), fc.record({ set: fc.constantFrom('nets', 'ports', 'v6', 'nope', 'bad') }));
const match = fc.record(
  {
    ethType: mostly(fc.constantFrom('ipv4', 'ipv6', 'arp', 0x88cc, 5, 'toString')),
    vlan: mostly(fc.integer({ min: -1, max: 5000 })),
    innerVlan: mostly(fc.integer({ min: 0, max: 4096 })),
    srcMac: mostly(fc.constantFrom('aa:bb:cc:dd:ee:ff', 'zz', { set: 'macs' })),
    dstMac: mostly(fc.constantFrom('aa-bb-cc-dd-ee-ff', { set: 'ports' })),
    src: mostly(addrVal),
    dst: mostly(addrVal),
    proto: mostly(fc.constantFrom('tcp', 'udp', 'icmp', 'icmpv6', 6, 17, 300, 'constructor')),
    dscp: mostly(fc.integer({ min: -1, max: 64 })),
    sport: mostly(portVal),
    dport: mostly(portVal),
    tcpFlags: mostly(fc.constantFrom('syn,!ack', 'syn,!syn', '', 'bogus', { syn: true, ack: false }, { toString: true }, { syn: 1 })),
    icmpType: mostly(fc.constantFrom('echo-request', 'packet-too-big', 'constructor', 8, 300)),
    icmpCode: mostly(fc.integer({ min: -1, max: 256 })),
    other: junk,
  },
  { requiredKeys: [] },
);
const action = mostly(fc.constantFrom('pass', 'drop', 'tx', 'reject', { redirect: 'eth1' }, { redirect: 'a/b' }, { xsk: 'grp' }, { xsk: 'bad-name' }, { redirect: 'eth1', xsk: 'g' }));
const rule = fc.record({ name: maybe(mostly(fc.constantFrom('r', 'r', 'bad name', ''))), match: maybe(mostly(match)), action: maybe(action), count: maybe(mostly(fc.boolean())) }, { requiredKeys: [] });
const setSpec = fc.record(
  {
    type: mostly(fc.constantFrom('ipv4-prefix', 'ipv6-prefix', 'ipv4', 'ipv6', 'port', 'mac', 'cidr')),
    elements: maybe(mostly(fc.array(mostly(fc.constantFrom('10.0.0.0/8', '1.2.3.4', 'fd00::1', 80, '443', 'aa:bb:cc:dd:ee:ff', 'x', 70000)), { maxLength: 4 }))),
    maxEntries: maybe(mostly(fc.integer({ min: -1, max: 5 }))),
  },
  { requiredKeys: ['type'] },
);
const section = fc.record(
  {
    interface: mostly(fc.constantFrom('eth0', 'eth1', 'lo', 'a/b', '', 'abcdefghijklmnopq')),
    mode: maybe(mostly(fc.constantFrom('auto', 'native', 'generic', 'fast'))),
    default: maybe(action),
    malformed: maybe(mostly(fc.constantFrom('drop', 'pass', 'keep'))),
    sets: maybe(mostly(fc.dictionary(fc.constantFrom('nets', 'ports', 'macs', 'v6', 'bad', '1x', 'toString'), mostly(setSpec), { maxKeys: 3 }))),
    rules: maybe(mostly(fc.array(mostly(rule), { maxLength: 4 }).chain((a) => fc.constantFrom(a, Object.assign(new Array(a.length + 1), a))))),
  },
  { requiredKeys: [] },
);
const policy = fc.record(
  {
    name: mostly(fc.constantFrom('p', 'hello-chain', 'Bad', '', 'a'.repeat(60))),
    functions: maybe(mostly(fc.dictionary(fnName, mostly(fnSpec), { maxKeys: 3 }))),
    routes: maybe(mostly(fc.dictionary(fc.constantFrom('/a', '/a/', 'r', '/b c', 'toString', ''), mostly(route), { maxKeys: 3 }))),
    pool: maybe(mostly(fc.record({ bufferSize: mostly(fc.constantFrom(64, 4096, 1000, 1 << 30)), bufferCount: mostly(fc.integer({ min: 0, max: 1 << 21 })) }))),
    gateway: maybe(mostly(fc.record({ instances: mostly(fc.integer({ min: 0, max: 70 })) }))),
    xdp: maybe(mostly(fc.array(mostly(section), { maxLength: 3 }).chain((a) => fc.constantFrom(a, Object.assign(new Array(a.length + 1), a))))),
    extra: maybe(junk),
  },
  { requiredKeys: ['name'] },
);

/** A valid policy (most of the time: duplicate names and the like still happen), to mutate. */
const goodMatch = fc.record(
  {
    proto: fc.constantFrom('tcp', 'udp'),
    dport: fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.constant({ set: 'ports' })),
    src: fc.constantFrom('10.0.0.0/8', '192.0.2.1', { set: 'nets' }),
    vlan: fc.integer({ min: 0, max: 4095 }),
    tcpFlags: fc.constantFrom('syn,!ack', { syn: true }),
    dscp: fc.integer({ min: 0, max: 63 }),
  },
  { requiredKeys: [] },
).map((m) => (m.tcpFlags !== undefined ? { ...m, proto: 'tcp' } : m));
const goodSection = fc.record({
  interface: fc.constantFrom('eth0'),
  default: fc.constantFrom('pass', 'drop'),
  sets: fc.constant({ nets: { type: 'ipv4-prefix', elements: ['10.0.0.0/8'] }, ports: { type: 'port', elements: [80, 443] } }),
  rules: fc.array(fc.record({ match: goodMatch, action: fc.constantFrom('pass', 'drop', 'tx', { redirect: 'eth1' }, { xsk: 'g' }) }), { maxLength: 4 }),
});
const goodPolicy = fc.record(
  {
    name: fc.constantFrom('p', 'hello-chain'),
    functions: fc.constant({ a: { instances: 2, handler: './a.ts' }, b: { instances: 1, handler: './b.c', language: 'c', maxInFlight: 8 } }),
    routes: fc.dictionary(fc.constantFrom('/a', '/b', 'r'), fc.oneof(fc.array(fc.constantFrom('a', 'b'), { minLength: 1, maxLength: 4 }), fc.record({ functions: fc.constant(['a']), methods: fc.constant(['GET']) })), { minKeys: 1, maxKeys: 3 }),
    pool: fc.record({ bufferSize: fc.constantFrom(256, 4096), bufferCount: fc.integer({ min: 1, max: 1024 }) }),
    xdp: fc.array(goodSection, { maxLength: 1 }),
  },
  { requiredKeys: ['name', 'functions', 'routes'] },
);

/** The nodes of a realized value, by position in a depth-first walk (objects and arrays). */
function nodes(v: unknown, out: { parent: Record<PropertyKey, unknown>; key: PropertyKey }[] = [], depth = 0): typeof out {
  if (depth > 8 || typeof v !== 'object' || v === null || !built.has(v)) return out;
  for (const k of Object.keys(v)) {
    out.push({ parent: v as Record<PropertyKey, unknown>, key: k });
    nodes((v as Record<string, unknown>)[k], out, depth + 1);
  }
  return out;
}

/** A valid policy with one value somewhere in it replaced (or deleted, or turned into a hole). */
function mutate(good: unknown, pick: number, replacement: unknown): unknown {
  const spec = realize(good);
  const all = nodes(spec);
  if (all.length === 0) return spec;
  const { parent, key } = all[pick % all.length]!;
  if (pick % 5 === 0) delete parent[key];
  else parent[key] = realize(replacement);
  return spec;
}

/** Sometimes a cycle: some object inside points back at an ancestor. */
function withCycle(spec: unknown, pick: number): unknown {
  const objs: Record<string, unknown>[] = [];
  const walk = (v: unknown, depth: number): void => {
    // Only the plain objects realize() built (a revoked proxy throws on any question).
    if (depth > 6 || typeof v !== 'object' || v === null || !built.has(v)) return;
    objs.push(v as Record<string, unknown>);
    for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k], depth + 1);
  };
  walk(spec, 0);
  if (objs.length === 0) return spec;
  const o = objs[pick % objs.length]!;
  o.loop = objs[(pick * 7) % objs.length];
  return spec;
}

type Generated = { kind: 'as-is'; v: unknown } | { kind: 'cycle'; v: unknown; n: number } | { kind: 'mutant'; v: unknown; n: number; with: unknown };
const specs: fc.Arbitrary<Generated> = fc.oneof(
  { arbitrary: goodPolicy.map((v) => ({ kind: 'as-is' as const, v })), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('mutant' as const), v: goodPolicy, n: fc.nat(), with: junk }), weight: 8 },
  { arbitrary: policy.map((v) => ({ kind: 'as-is' as const, v })), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('cycle' as const), v: fc.oneof(goodPolicy, policy), n: fc.nat() }), weight: 1 },
  { arbitrary: junk.map((v) => ({ kind: 'as-is' as const, v })), weight: 1 },
);

function build(g: Generated): unknown {
  if (g.kind === 'mutant') return mutate(g.v, g.n, g.with);
  if (g.kind === 'cycle') return withCycle(realize(g.v), g.n);
  return realize(g.v);
}

test(`property: ${RUNS} generated specs give an IR or a PolicyError`, () => {
  const t0 = Date.now();
  const seen = { ir: 0, error: 0 };
  fc.assert(
    fc.property(specs, (g) => {
      seen[judge(build(g))]++;
    }),
    { numRuns: RUNS, seed: Number(process.env.BPFCTL_FUZZ_SEED ?? 1313) },
  );
  const ms = Date.now() - t0;
  assert.ok(ms < 60_000, `${RUNS} specs in ${ms} ms (at most a minute)`);
  // The generator must reach valid IRs too, or it only ever tests the first check.
  assert.ok(seen.ir > RUNS / 20, `only ${seen.ir} of ${RUNS} specs were valid policies`);
  console.log(`  ${RUNS} specs in ${ms} ms: ${seen.ir} valid, ${seen.error} refused`);
});

test.run();
