
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CHANGE_KINDS, type Change, DiffError, diffPolicies, type PolicyDiff, type PolicyView, viewOfIr } from '../../src/deploy/diff.ts';
import { renderDiff } from '../../src/deploy/diff-render.ts';
import { BpfctlError } from '../../src/errors.ts';
import { lowerPolicy, type PolicyIR } from '../../src/ir/policy.ts';
import type { XdpSectionIR } from '../../src/ir/xdp.ts';
import { loadPolicyFile } from '../../src/load/index.ts';
import { matchGolden } from '../helpers/golden.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const goldenDir = join(root, 'test/golden/diff');

function golden(file: string, actual: string): void {
  matchGolden(goldenDir, file, actual);
}

// biome-ignore lint/suspicious/noExplicitAny: specs are mutated freely per case; lowerPolicy validates them
type Spec = any;

/** A fresh copy each call, so a case can mutate it. */
function baseSpec(): Spec {
  return {
    name: 'hello-chain',
    functions: {
      upper: { instances: 2, handler: './functions/upper.ts' },
      reverse: { instances: 1, handler: './functions/reverse.ts' },
      stamp: { instances: 1, handler: './functions/stamp.ts', maxInFlight: 64 },
    },
    routes: { '/hello': ['upper', 'reverse', 'stamp'], '/shout': ['upper', 'stamp'] },
    pool: { bufferSize: 4096, bufferCount: 1024 },
    xdp: [
      {
        interface: 'eth0',
        mode: 'auto',
        default: 'pass',
        sets: {
          blocklist: { type: 'ipv4-prefix', elements: ['192.0.2.0/24', '198.51.100.0/24'] },
          web: { type: 'port', elements: [80, 443] },
        },
        rules: [
          { name: 'blocklist', match: { src: { set: 'blocklist' } }, action: 'drop' },
          { name: 'ssh', match: { proto: 'tcp', dport: 22 }, action: 'drop' },
          { name: 'web', match: { proto: 'tcp', dport: { set: 'web' } }, action: 'pass' },
        ],
      },
    ],
  };
}

const H = { upper: 'a1b2c3d4'.repeat(8), reverse: '5e6f7a8b'.repeat(8), stamp: 'c0ffee00'.repeat(8) };

function view(spec: Spec, hashes: Record<string, string> = H): PolicyView {
  return viewOfIr(lowerPolicy(spec), hashes);
}

/** The IR with HTTP methods on its routes, as RouteIR is about to carry them. */
function withMethods(ir: PolicyIR, methods: Record<string, string[]>): PolicyIR {
  // Cast: the IR in the tree may or may not have `methods` yet; either way this sets them.
  return { ...ir, routes: ir.routes.map((r) => (methods[r.name] ? { ...r, methods: methods[r.name] } : r)) as PolicyIR['routes'] };
}

interface Case {
  live?: PolicyView;
  next: PolicyView;
  check(d: PolicyDiff): void;
}

const kinds = (d: PolicyDiff) => d.changes.map((c) => c.kind);

const CASES: Record<string, () => Case> = {
  'no-changes': () => ({
    next: view(baseSpec()),
    check: (d) => {
      assert.equal(d.changes, []);
      assert.ok(d.live);
      assert.equal(d.restartReasons, []);
    },
  }),
  'route-added': () => {
    const s = baseSpec();
    s.routes['/new'] = ['stamp'];
    return { next: view(s), check: (d) => assert.equal(kinds(d), ['route-added']) };
  },
  'route-changed': () => {
    const s = baseSpec();
    s.routes['/shout'] = ['stamp', 'upper'];
    return {
      next: view(s),
      check: (d) => {
        assert.equal(d.changes, [
          { kind: 'route-changed', action: 'live', name: '/shout', from: { functions: ['upper', 'stamp'], methods: ['POST'] }, to: { functions: ['stamp', 'upper'], methods: ['POST'] } },
        ]);
      },
    };
  },
  'route-methods-changed': () => ({
    next: viewOfIr(withMethods(lowerPolicy(baseSpec()), { '/hello': ['post', 'GET'] }), H),
    check: (d) => {
      assert.equal(kinds(d), ['route-changed']);
      const c = d.changes[0] as Extract<Change, { kind: 'route-changed' }>;
      assert.equal(c.to.methods, ['GET', 'POST']);
      assert.equal(c.from.functions, c.to.functions);
    },
  }),
  'route-removed': () => {
    const s = baseSpec();
    delete s.routes['/shout'];
    return { next: view(s), check: (d) => assert.equal(kinds(d), ['route-removed']) };
  },
  'function-added': () => {
    const s = baseSpec();
    s.functions.audit = { instances: 3, handler: './functions/audit.c', language: 'c' };
    return { next: view(s, { ...H, audit: 'ab'.repeat(32) }), check: (d) => assert.equal(kinds(d), ['function-added']) };
  },
  'function-removed': () => {
    const s = baseSpec();
    delete s.functions.reverse;
    s.routes['/hello'] = ['upper', 'stamp'];
    return {
      next: view(s),
      // The route stops naming the function before the function goes: that is the order to apply them in.
      check: (d) => assert.equal(kinds(d), ['route-changed', 'function-removed']),
    };
  },
  'function-scaled': () => {
    const s = baseSpec();
    s.functions.upper.instances = 4;
    return { next: view(s), check: (d) => assert.equal(d.changes, [{ kind: 'function-scaled', action: 'live', name: 'upper', from: 2, to: 4 }]) };
  },
  'function-code-changed': () => ({
    next: view(baseSpec(), { ...H, stamp: '9f8e7d6c'.repeat(8) }),
    check: (d) => {
      assert.equal(d.changes, [{ kind: 'function-code-changed', action: 'live', name: 'stamp', codeHash: { from: H.stamp, to: '9f8e7d6c'.repeat(8) } }]);
      assert.ok(d.live);
    },
  }),
  'function-runtime-changed': () => {
    const s = baseSpec();
    s.functions.stamp.maxInFlight = undefined;
    s.functions.reverse = { instances: 1, handler: './functions/reverse.c', language: 'c' };
    return {
      next: view(s),
      check: (d) => {
        assert.equal(kinds(d), ['function-code-changed', 'function-code-changed']);
        assert.equal(d.changes[0], { kind: 'function-code-changed', action: 'live', name: 'reverse', language: { from: 'ts', to: 'c' }, handler: { from: './functions/reverse.ts', to: './functions/reverse.c' } });
        assert.equal(d.changes[1], { kind: 'function-code-changed', action: 'live', name: 'stamp', maxInFlight: { from: 64, to: null } });
      },
    };
  },
  'gateway-scaled': () => {
    const s = baseSpec();
    s.gateway = { instances: 2 };
    return {
      next: view(s),
      check: (d) => {
        assert.equal(kinds(d), ['gateway-scaled']);
        assert.not.ok(d.live);
        assert.equal(d.restartReasons.length, 1);
      },
    };
  },
  'gateway-engine-changed': () => {
    const s = baseSpec();
    s.gateway = { engine: 'node' };
    return {
      next: view(s),
      check: (d) => {
        assert.equal(kinds(d), ['gateway-engine-changed']);
        assert.not.ok(d.live);
        assert.match(d.restartReasons[0]!, /engine/);
      },
    };
  },
  'pool-changed': () => {
    const s = baseSpec();
    s.pool = { bufferSize: 8192, bufferCount: 512 };
    return {
      next: view(s),
      check: (d) => {
        assert.equal(d.changes, [
          { kind: 'pool-changed', action: 'restart', name: 'pool', reason: 'pool geometry is fixed while buffers are shared', bufferSize: { from: 4096, to: 8192 }, bufferCount: { from: 1024, to: 512 } },
        ]);
        assert.not.ok(d.live);
        assert.equal(d.restartReasons, ['pool geometry is fixed while buffers are shared']);
      },
    };
  },
  'xdp-added': () => {
    const s = baseSpec();
    s.xdp.push({ interface: 'eth1', mode: 'generic', default: 'drop', rules: [{ name: 'ping', match: { proto: 'icmp' }, action: 'pass' }] });
    return { next: view(s), check: (d) => assert.equal(kinds(d), ['xdp-added']) };
  },
  'xdp-removed': () => {
    const s = baseSpec();
    s.xdp = [];
    return { next: view(s), check: (d) => assert.equal(kinds(d), ['xdp-removed']) };
  },
  'xdp-changed': () => {
    const s = baseSpec();
    const x = s.xdp[0];
    x.mode = 'native';
    x.default = 'drop';
    x.malformed = 'pass';
    x.sets.blocklist.elements = ['198.51.100.0/24', '203.0.113.0/24'];
    x.sets.web.maxEntries = 16;
    delete x.sets.web.elements;
    x.sets.admins = { type: 'ipv4', elements: ['10.0.0.1'] };
    x.rules[1] = { name: 'ssh', match: { proto: 'tcp', dport: 2222 }, action: 'drop', count: false };
    x.rules.push({ name: 'dns', match: { proto: 'udp', sport: 53 }, action: 'pass' }, { name: 'admins', match: { src: { set: 'admins' } }, action: 'pass' });
    return {
      next: view(s),
      check: (d) => {
        assert.equal(kinds(d), ['xdp-changed']);
        const c = d.changes[0] as Extract<Change, { kind: 'xdp-changed' }>;
        assert.equal(c.mode, { from: 'auto', to: 'native' });
        assert.equal(c.default, { from: 'pass', to: 'drop' });
        assert.equal(c.malformed, { from: 'drop', to: 'pass' });
        assert.equal(c.rulesChanged.map((r) => r.index), [1]);
        assert.equal(c.rulesAdded.map((r) => r.index), [3, 4]);
        assert.equal(c.rulesRemoved, []);
        assert.equal(c.sets.map((x) => [x.name, x.change]), [['admins', 'added'], ['blocklist', 'changed'], ['web', 'changed']]);
        assert.equal(c.sets[1]!.elementsAdded, ['203.0.113.0/24']);
        assert.equal(c.sets[1]!.elementsRemoved, ['192.0.2.0/24']);
        assert.equal(c.sets[2]!.maxEntries, { from: 4096, to: 16 });
      },
    };
  },
  'xdp-rules-removed': () => {
    const s = baseSpec();
    s.xdp[0].rules = s.xdp[0].rules.slice(0, 1);
    return { next: view(s), check: (d) => assert.equal((d.changes[0] as Extract<Change, { kind: 'xdp-changed' }>).rulesRemoved.map((r) => r.name), ['ssh', 'web']) };
  },
  mixed: () => {
    const s = baseSpec();
    s.functions.upper.instances = 4;
    s.functions.audit = { instances: 1, handler: './functions/audit.ts' };
    delete s.functions.reverse;
    s.routes = { '/hello': ['upper', 'stamp', 'audit'], '/shout': ['stamp', 'upper'], '/audit': ['audit'] };
    s.pool.bufferSize = 8192;
    s.xdp[0].rules[2].action = 'drop';
    s.xdp.push({ interface: 'eth1', rules: [] });
    return {
      next: view(s, { upper: H.upper, stamp: '9f8e7d6c'.repeat(8), audit: 'ab'.repeat(32) }),
      check: (d) => {
        assert.equal(kinds(d), ['pool-changed', 'function-added', 'function-code-changed', 'function-scaled', 'route-added', 'route-changed', 'route-changed', 'function-removed', 'xdp-added', 'xdp-changed']);
        assert.not.ok(d.live);
      },
    };
  },
  'long-lines': () => {
    const fns: Record<string, unknown> = {};
    const names = Array.from({ length: 12 }, (_, i) => `function_with_a_long_name_${i}`);
    for (const n of names) fns[n] = { instances: 1, handler: `./functions/${n}.ts` };
    const live = { name: 'a-policy-with-a-rather-long-name-for-its-pins', functions: fns, routes: { '/a/very/long/route/name/for/wrapping': names.slice(0, 6) } };
    const next = { ...live, routes: { '/a/very/long/route/name/for/wrapping': names.slice(6) }, gateway: { instances: 3 }, pool: { bufferSize: 2048, bufferCount: 1024 } };
    return {
      live: viewOfIr(lowerPolicy(live)),
      next: viewOfIr(lowerPolicy(next)),
      check: (d) => assert.equal(kinds(d), ['gateway-scaled', 'pool-changed', 'route-changed']),
    };
  },
};

for (const [name, make] of Object.entries(CASES)) {
  test(`golden: ${name}`, () => {
    const c = make();
    const d = diffPolicies(c.live ?? view(baseSpec()), c.next);
    c.check(d);
    const text = renderDiff(d);
    for (const line of text.split('\n')) assert.ok(line.length < 100, `line of ${line.length} columns: ${line}`);
    golden(`${name}.txt`, `${text}\n`);
    golden(`${name}.json`, `${JSON.stringify(d, null, 2)}\n`);
    // The JSON is plain data: what apply reads back is what diff produced.
    assert.equal(JSON.parse(JSON.stringify(d)), d);
  });
}

test('the header says how many changes and whether they are all live', () => {
  assert.is(renderDiff(diffPolicies(view(baseSpec()), view(baseSpec()))), 'policy hello-chain: no changes');
  const s = baseSpec();
  s.functions.upper.instances = 3;
  assert.is(renderDiff(diffPolicies(view(baseSpec()), view(s))).split('\n')[0], 'policy hello-chain: 1 change, all live');
  s.pool.bufferCount = 2048;
  assert.is(renderDiff(diffPolicies(view(baseSpec()), view(s))).split('\n')[0], 'policy hello-chain: 2 changes, 1 needs --restart: pool geometry is fixed while buffers are shared');
});

test('policies of different names are not compared', () => {
  const s = baseSpec();
  s.name = 'other';
  try {
    diffPolicies(view(baseSpec()), view(s));
    assert.unreachable('expected a DiffError');
  } catch (err) {
    assert.instance(err, DiffError);
    assert.instance(err, BpfctlError);
    assert.is((err as DiffError).code, 'E_DIFF');
    assert.match((err as Error).message, /other.*hello-chain/);
  }
});

test('an unknown code hash on either side is not a code change', () => {
  const known = view(baseSpec());
  const unknown = viewOfIr(lowerPolicy(baseSpec()));
  assert.ok(unknown.functions.every((f) => f.codeHash === null));
  assert.equal(diffPolicies(unknown, known).changes, []);
  assert.equal(diffPolicies(known, unknown).changes, []);
  const partial = view(baseSpec(), { upper: 'ff'.repeat(32) });
  assert.equal(kinds(diffPolicies(known, partial)), ['function-code-changed']);
  // Unknown hashes still show a handler that moved.
  const s = baseSpec();
  s.functions.upper.handler = './functions/upper2.ts';
  const d = diffPolicies(unknown, viewOfIr(lowerPolicy(s)));
  assert.equal(d.changes, [{ kind: 'function-code-changed', action: 'live', name: 'upper', handler: { from: './functions/upper.ts', to: './functions/upper2.ts' } }]);
});

test('a placement change is live, shown as one row; label order is not a change', () => {
  const s = baseSpec();
  s.functions.upper.placement = { labels: { zone: 'x', role: 'edge' } };
  const t = baseSpec();
  t.functions.upper.placement = { labels: { role: 'edge', zone: 'x' } };
  assert.equal(diffPolicies(view(s), view(t)).changes, []);
  t.functions.upper.placement = { labels: { role: 'edge', zone: 'x' }, spill: false };
  const d = diffPolicies(view(s), view(t));
  assert.equal(d.changes, [{ kind: 'function-placement-changed', action: 'live', name: 'upper', from: '{"labels":{"role":"edge","zone":"x"}}', to: '{"labels":{"role":"edge","zone":"x"},"spill":false}' }]);
  assert.ok(d.live);
  assert.equal(kinds(diffPolicies(view(baseSpec()), view(t))), ['function-placement-changed']);
});

test('routes without methods answer POST; method order and case do not matter', () => {
  const ir = lowerPolicy(baseSpec());
  assert.equal(viewOfIr(ir).routes.map((r) => r.methods), [['POST'], ['POST']]);
  const a = viewOfIr(withMethods(ir, { '/hello': ['GET', 'POST'], '/shout': ['POST'] }));
  const b = viewOfIr(withMethods(ir, { '/hello': ['post', 'get', 'GET'] }));
  assert.equal(diffPolicies(a, b).changes, []);
  // Hand-made views need not be normalised either.
  const c = structuredClone(a);
  c.routes[0]!.methods = ['POST', 'GET'];
  assert.equal(diffPolicies(a, c).changes, []);
});

test('what does not change behaviour is not a change', () => {
  const a = baseSpec();
  const b = baseSpec();
  // Policy order of functions and routes (ids shift, but apply assigns those).
  b.functions = { stamp: a.functions.stamp, reverse: a.functions.reverse, upper: a.functions.upper };
  b.routes = { '/shout': a.routes['/shout'], '/hello': a.routes['/hello'] };
  // Set element order: a set is a map.
  b.xdp[0].sets.blocklist.elements = ['198.51.100.0/24', '192.0.2.0/24'];
  assert.equal(diffPolicies(view(a), view(b)).changes, []);
  // Sections are matched by interface, not position.
  a.xdp.push({ interface: 'eth1', default: 'drop' });
  b.xdp.unshift({ interface: 'eth1', default: 'drop' });
  assert.equal(diffPolicies(view(a), view(b)).changes, []);
});

test('a redirect slot renumbered by an earlier redirect is not a rule change', () => {
  const a = baseSpec();
  a.xdp[0].rules.push({ name: 'to-eth2', match: { proto: 'udp' }, action: { redirect: 'eth2' } });
  const b = baseSpec();
  b.xdp[0].rules[1] = { name: 'ssh', match: { proto: 'tcp', dport: 22 }, action: { redirect: 'eth3' } };
  b.xdp[0].rules.push({ name: 'to-eth2', match: { proto: 'udp' }, action: { redirect: 'eth2' } });
  const va = view(a);
  const vb = view(b);
  assert.is.not(JSON.stringify(va.xdp[0]!.rules[3]!.action), JSON.stringify(vb.xdp[0]!.rules[3]!.action));
  const c = diffPolicies(va, vb).changes[0] as Extract<Change, { kind: 'xdp-changed' }>;
  assert.equal(c.rulesChanged.map((r) => r.index), [1]);
});

test('the example policies diff empty against themselves', async () => {
  for (const file of ['examples/hello-chain/policy.ts', 'examples/firewall/policy.ts', 'examples/boutique/policy.ts']) {
    const ir = await loadPolicyFile(join(root, file));
    assert.equal(diffPolicies(viewOfIr(ir), viewOfIr(structuredClone(ir))).changes, [], file);
    // A manifest's IR has been through JSON.
    assert.equal(diffPolicies(viewOfIr(JSON.parse(JSON.stringify(ir)) as PolicyIR), viewOfIr(ir)).changes, [], file);
  }
});

// --- laws over seeded random views --------------------------------------------------------------

/** mulberry32: small, seeded, the same sequence on every machine. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FN_NAMES = ['a', 'b', 'c', 'd', 'e', 'f'];
const ROUTE_NAMES = ['/r0', '/r1', '/r2', '/r3', 'r4'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
/** Two variants per interface, lowered one policy at a time (a policy has one section per interface). */
const SECTIONS: XdpSectionIR[] = [
  [
    { interface: 'eth0', rules: [{ match: { proto: 'tcp', dport: 22 }, action: 'drop' }] },
    { interface: 'eth1', rules: [{ match: { proto: 'udp' }, action: { redirect: 'eth2' } }, { action: 'drop', count: false }] },
    { interface: 'eth2', sets: { p: { type: 'ipv4-prefix', elements: ['10.0.0.0/8'] } }, rules: [{ match: { src: { set: 'p' } }, action: 'tx' }] },
  ],
  [
    { interface: 'eth0', mode: 'native', default: 'drop', sets: { s: { type: 'port', elements: [1, 2] } }, rules: [{ match: { dport: { set: 's' } }, action: 'pass' }] },
    { interface: 'eth1', malformed: 'pass' },
    { interface: 'eth2', sets: { p: { type: 'ipv4-prefix', elements: ['10.0.0.0/8', '192.0.2.0/24'] } }, rules: [{ match: { src: { set: 'p' } }, action: 'tx' }] },
  ],
].flatMap((xdp) => lowerPolicy({ name: 'x', xdp }).xdp);

function randomView(r: () => number): PolicyView {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const some = <T>(xs: readonly T[]) => xs.filter(() => r() < 0.5);
  const fns = some(FN_NAMES);
  if (!fns.length) fns.push(pick(FN_NAMES));
  const functions = fns.map((name) => ({
    name,
    instances: 1 + Math.floor(r() * 3),
    language: pick(['ts', 'c'] as const),
    handler: `./${name}${pick(['', '2'])}.ts`,
    maxInFlight: pick([null, 8, 64]),
    codeHash: pick([null, 'aa'.repeat(32), 'bb'.repeat(32)]),
    placement: pick([null, '{"nodes":["a","b"]}', '{"nodes":["a","b"],"spill":false}']),
  }));
  const routes = some(ROUTE_NAMES).map((name) => ({
    name,
    functions: Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(fns)),
    methods: r() < 0.5 ? ['POST'] : some(METHODS).sort(),
  }));
  const byIface = new Map<string, XdpSectionIR>();
  for (const s of some(SECTIONS)) byIface.set(s.interface, s);
  return {
    name: 'p',
    gateway: { instances: 1 + Math.floor(r() * 2), engine: pick(['node', 'native'] as const) },
    functions,
    routes,
    pool: { bufferSize: pick([2048, 4096]), bufferCount: pick([256, 1024]) },
    xdp: [...byIface.values()],
  };
}

function shuffled<T>(xs: readonly T[], r: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const RUNS = 500;

test('law: a view diffs empty against itself and against a copy of itself', () => {
  const r = rng(1);
  for (let i = 0; i < RUNS; i++) {
    const v = randomView(r);
    assert.equal(diffPolicies(v, v), { policy: 'p', changes: [], live: true, restartReasons: [] });
    assert.equal(diffPolicies(v, structuredClone(v)).changes, []);
  }
});

test('law: added, removed and changed match the names on each side', () => {
  const r = rng(2);
  for (let i = 0; i < RUNS; i++) {
    const live = randomView(r);
    const next = randomView(r);
    const d = diffPolicies(live, next);
    const names = (k: Change['kind']) => d.changes.filter((c) => c.kind === k).map((c) => c.name).sort();
    const liveRoutes = new Set(live.routes.map((x) => x.name));
    const nextRoutes = new Set(next.routes.map((x) => x.name));
    assert.equal(names('route-added'), [...nextRoutes].filter((n) => !liveRoutes.has(n)).sort());
    assert.equal(names('route-removed'), [...liveRoutes].filter((n) => !nextRoutes.has(n)).sort());
    for (const n of names('route-changed')) assert.ok(liveRoutes.has(n) && nextRoutes.has(n));
    const liveFns = new Set(live.functions.map((x) => x.name));
    const nextFns = new Set(next.functions.map((x) => x.name));
    assert.equal(names('function-added'), [...nextFns].filter((n) => !liveFns.has(n)).sort());
    assert.equal(names('function-removed'), [...liveFns].filter((n) => !nextFns.has(n)).sort());
    const liveIf = new Set(live.xdp.map((x) => x.interface));
    const nextIf = new Set(next.xdp.map((x) => x.interface));
    assert.equal(names('xdp-added'), [...nextIf].filter((n) => !liveIf.has(n)).sort());
    assert.equal(names('xdp-removed'), [...liveIf].filter((n) => !nextIf.has(n)).sort());
    // One change per kind and subject.
    const keys = d.changes.map((c) => `${c.kind} ${c.name}`);
    assert.is(new Set(keys).size, keys.length);
  }
});

test('law: live, restartReasons and order follow from the changes', () => {
  const r = rng(3);
  for (let i = 0; i < RUNS; i++) {
    const d = diffPolicies(randomView(r), randomView(r));
    const restart = d.changes.filter((c) => c.action === 'restart');
    assert.is(d.live, restart.length === 0);
    assert.equal(d.restartReasons, [...new Set(restart.map((c) => (c as { reason: string }).reason))]);
    for (const c of d.changes) assert.is(c.action, c.kind === 'gateway-scaled' || c.kind === 'gateway-engine-changed' || c.kind === 'pool-changed' ? 'restart' : 'live');
    for (let j = 1; j < d.changes.length; j++) {
      const a = d.changes[j - 1]!;
      const b = d.changes[j]!;
      const k = CHANGE_KINDS.indexOf(a.kind) - CHANGE_KINDS.indexOf(b.kind);
      assert.ok(k < 0 || (k === 0 && a.name < b.name), `${a.kind} ${a.name} before ${b.kind} ${b.name}`);
    }
  }
});

test('law: the diff depends on neither side order nor key order, and its reverse mirrors it', () => {
  const r = rng(4);
  const mirror: Record<string, string> = { 'route-added': 'route-removed', 'route-removed': 'route-added', 'function-added': 'function-removed', 'function-removed': 'function-added', 'xdp-added': 'xdp-removed', 'xdp-removed': 'xdp-added' };
  for (let i = 0; i < RUNS; i++) {
    const live = randomView(r);
    const next = randomView(r);
    const d = diffPolicies(live, next);
    const reordered = { ...next, functions: shuffled(next.functions, r), routes: shuffled(next.routes, r), xdp: shuffled(next.xdp, r) };
    assert.equal(diffPolicies({ ...live, routes: shuffled(live.routes, r) }, reordered), d);
    const back = diffPolicies(next, live);
    const kindsOf = (x: PolicyDiff) => x.changes.map((c) => `${mirror[c.kind] ?? c.kind} ${c.name}`).sort();
    assert.equal(kindsOf(back), d.changes.map((c) => `${c.kind} ${c.name}`).sort());
  }
});

test('law: every rendered line is under 100 columns and every change has a row', () => {
  const r = rng(5);
  for (let i = 0; i < RUNS; i++) {
    const d = diffPolicies(randomView(r), randomView(r));
    const lines = renderDiff(d).split('\n');
    for (const line of lines) assert.ok(line.length < 100, line);
    assert.ok(lines.length >= 1 + d.changes.length);
    assert.match(lines[0]!, d.changes.length ? /^policy p: \d+ changes?, / : /^policy p: no changes$/);
  }
});

test.run();
