/**
 * Validation of a policy's `tc` sections: the xdp checks (one engine, every problem with its
 * path), the direction, the actions tc cannot carry out (AF_XDP anywhere, `tx` at egress) as
 * PolicyErrors naming the rule, the types that catch the same at compile time, the IR they give
 * (additive: a policy without tc sections is the IR it was), the diff `apply` acts on, and hostile
 * input that must still give an IR or a PolicyError.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import firewall from '../../examples/firewall/policy.ts';
import { diffPolicies, viewOfIr } from '../../src/deploy/diff.ts';
import { renderDiff } from '../../src/deploy/diff-render.ts';
import { bounce, definePolicy, drop, pass, redirect, set, tcSection, toXsk } from '../../src/dsl/index.ts';
import { canonicalJson, hashIR, lowerPolicy, PolicyError } from '../../src/ir/policy.ts';
import { lowerTcSections } from '../../src/ir/xdp.ts';

const test = suite('tc validation');

function problems(spec: unknown): { path: string; message: string }[] {
  try {
    lowerPolicy(spec);
  } catch (err) {
    assert.instance(err, PolicyError, `not a PolicyError: ${(err as Error).stack}`);
    return [...(err as PolicyError).issues];
  }
  assert.unreachable('the policy validated');
  return [];
}

const paths = (spec: unknown) => problems(spec).map((p) => p.path);

test('a tc section lowers to the xdp shape plus its direction', () => {
  const ir = lowerPolicy(
    definePolicy({
      name: 'edge',
      tc: [
        tcSection({
          interface: 'eth0',
          direction: 'egress',
          default: 'drop',
          sets: { resolvers: { type: 'ipv4', elements: ['192.0.2.53'] } },
          rules: [pass({ dst: set('resolvers'), proto: 'udp', dport: 53 }, { name: 'dns' }), drop({ proto: 'udp', dport: 53 }), redirect('eth1', { proto: 'tcp', dport: 25 })],
        }),
        tcSection({ interface: 'eth0', direction: 'ingress', rules: [bounce({ proto: 'udp', dport: 7 }, { name: 'echo', count: false })] }),
      ],
    }),
  );
  const [eg, ing] = ir.tc!;
  assert.equal(
    { index: eg!.index, interface: eg!.interface, direction: eg!.direction, default: eg!.default, malformed: eg!.malformed, redirects: eg!.redirects, xskGroups: eg!.xskGroups },
    { index: 0, interface: 'eth0', direction: 'egress', default: { kind: 'drop' }, malformed: 'drop', redirects: ['eth1'], xskGroups: [] },
  );
  assert.equal(
    eg!.rules.map((r) => [r.name, r.summary]),
    [
      ['dns', 'ip4 dst @resolvers udp dport 53 -> pass'],
      ['rule1', 'ip udp dport 53 -> drop'],
      ['rule2', 'ip tcp dport 25 -> redirect eth1'],
    ],
  );
  assert.equal(eg!.sets, [{ name: 'resolvers', kind: 'ipv4', maxEntries: 4096, elements: ['192.0.2.53'] }]);
  assert.is(ing!.direction, 'ingress');
  assert.equal(ing!.rules[0]!.action, { kind: 'tx' }, 'tx bounces at ingress');
  assert.is(ing!.rules[0]!.count, false);
  assert.not.ok('mode' in eg!, 'a tc section has no XDP attach mode');
  assert.equal(JSON.parse(JSON.stringify(ir)), ir, 'plain JSON data');
});

test('additive: a policy without tc sections has no tc key, and the same IR and hash as before', () => {
  const ir = lowerPolicy(firewall);
  assert.not.ok('tc' in ir);
  assert.is(ir.hash, hashIR(ir));
  const empty = lowerPolicy({ ...firewall, tc: [] });
  assert.not.ok('tc' in empty, 'an empty tc list is no tc sections');
  assert.is(empty.hash, ir.hash);
  const withTc = lowerPolicy({ ...firewall, tc: [{ interface: 'uplink0', direction: 'egress' }] });
  assert.is.not(withTc.hash, ir.hash);
  assert.is(canonicalJson(withTc.xdp), canonicalJson(ir.xdp), 'the xdp sections are untouched');
});

test('what tc cannot carry out is a PolicyError naming the rule, every problem in one run', () => {
  const got = problems({
    name: 'p',
    tc: [
      {
        interface: 'eth0',
        direction: 'egress',
        default: 'tx',
        rules: [{ action: { xsk: 'dpi' } }, { match: { proto: 'udp' }, action: 'tx' }, { action: 'pass' }, { match: { dport: [9, 1] }, action: 'drop' }],
      },
      { interface: 'eth1', direction: 'ingress', rules: [{ action: { xsk: 'g' } }, { action: 'tx' }] },
    ],
  });
  assert.equal(
    got.map((p) => p.path),
    ['tc[0].rules[0].action', 'tc[0].rules[1].action', 'tc[0].rules[3].match.dport', 'tc[0].default', 'tc[1].rules[0].action'],
  );
  assert.match(got[0]!.message, /a tc section cannot hand frames to AF_XDP sockets \(xsk 'dpi'\): they take frames at XDP only/);
  assert.match(got[1]!.message, /'tx' bounces a received frame back out of its interface, and at egress the frame is already leaving/);
  assert.match(got[3]!.message, /at egress/);
});

test('direction: required, one of two, and one section per interface and direction', () => {
  assert.equal(paths({ name: 'p', tc: [{ interface: 'eth0' }] }), ['tc[0].direction']);
  assert.match(problems({ name: 'p', tc: [{ interface: 'eth0' }] })[0]!.message, /missing: 'ingress' .* or 'egress'/);
  assert.match(problems({ name: 'p', tc: [{ interface: 'eth0', direction: 'out' }] })[0]!.message, /must be 'ingress' or 'egress', got "out"/);
  const dup = problems({
    name: 'p',
    tc: [
      { interface: 'eth0', direction: 'egress' },
      { interface: 'eth0', direction: 'ingress' },
      { interface: 'eth0', direction: 'egress' },
    ],
  });
  assert.equal(dup.map((p) => p.path), ['tc[2].direction']);
  assert.match(dup[0]!.message, /interface 'eth0' already has tc\[0\] at egress; one section per interface and direction/);
  // An interface may have an xdp section and a tc section per direction at once.
  const ir = lowerPolicy({ name: 'p', xdp: [{ interface: 'eth0' }], tc: [{ interface: 'eth0', direction: 'egress' }, { interface: 'eth0', direction: 'ingress' }] });
  assert.is(ir.tc!.length, 2);
  assert.is(ir.xdp.length, 1);
});

test('the checks of an xdp section, at their tc paths', () => {
  const got = problems({
    name: 'p',
    tc: [
      {
        interface: 'a/b',
        direction: 'ingress',
        mode: 'native',
        malformed: 'maybe',
        sets: { bad: { type: 'nope' }, ok: { type: 'port', elements: [70000] } },
        rules: [{ match: { tcpFlags: 'syn', proto: 'udp' }, action: 'drop' }, { match: { dport: { set: 'missing' } }, action: 'drop' }, { name: 'x y', action: 'pass' }, { action: 'explode' }],
      },
    ],
  });
  assert.equal(
    got.map((p) => p.path),
    [
      'tc[0].mode',
      'tc[0].interface',
      'tc[0].malformed',
      'tc[0].sets.bad.type',
      'tc[0].sets.ok.elements[0]',
      'tc[0].rules[0].match.tcpFlags',
      'tc[0].rules[1].match.dport.set',
      'tc[0].rules[2].name',
      'tc[0].rules[3].action',
    ],
  );
  assert.match(got[0]!.message, /unknown field 'mode' \(expected one of: interface, direction, default, malformed, sets, rules\)/);
});

test('top level: tc is an array; a policy of tc sections only is a policy; nothing at all is not', () => {
  assert.equal(paths({ name: 'p', tc: { interface: 'eth0' } }), ['tc']);
  assert.ok(lowerPolicy({ name: 'p', tc: [{ interface: 'eth0', direction: 'egress' }] }).tc);
  assert.match(problems({ name: 'p', tc: [] })[0]!.message, /needs a chain \(functions and routes\), xdp or tc sections, or both/);
  assert.throws(() => lowerTcSections([{ interface: 'eth0', direction: 'egress', rules: [{ action: { xsk: 'g' } }] }] as never, 'tc'), (e: unknown) => e instanceof PolicyError && e.path === 'tc[0].rules[0].action');
});

test('the types refuse what tc cannot do, where it is written', () => {
  tcSection({
    interface: 'eth0',
    direction: 'ingress',
    // @ts-expect-error AF_XDP sockets take frames at XDP only
    rules: [toXsk('dpi', { proto: 'udp' })],
  });
  // @ts-expect-error nothing to bounce at egress
  tcSection({ interface: 'eth0', direction: 'egress', rules: [bounce({ proto: 'udp' })] });
  // @ts-expect-error nor as the default
  tcSection({ interface: 'eth0', direction: 'egress', default: 'tx' });
  tcSection({
    interface: 'eth0',
    direction: 'egress',
    sets: { ports: { type: 'port' } },
    // @ts-expect-error 'prots' is not one of the section's sets
    rules: [drop({ dport: set('prots') })],
  });
  // @ts-expect-error direction is 'ingress' | 'egress'
  tcSection({ interface: 'eth0', direction: 'both' });
  // What is allowed type-checks: the builders, plain rules, tx at ingress, redirect both ways.
  const ok = definePolicy({
    name: 'p',
    tc: [
      tcSection({ interface: 'eth0', direction: 'ingress', rules: [bounce(), redirect('eth1'), { match: { proto: 'tcp' }, action: 'drop' }] }),
      tcSection({ interface: 'eth0', direction: 'egress', sets: { ports: { type: 'port' } }, rules: [drop({ dport: set('ports') }), redirect('eth1')] }),
    ],
  });
  assert.is(lowerPolicy(ok).tc!.length, 2);
});

test('diff: tc sections are matched by interface and direction, and apply acts on them live', () => {
  const v1 = lowerPolicy({ name: 'p', tc: [{ interface: 'eth0', direction: 'egress', rules: [{ name: 'a', match: { proto: 'udp', dport: 1 }, action: 'drop' }] }, { interface: 'eth0', direction: 'ingress' }] });
  const v2 = lowerPolicy({
    name: 'p',
    tc: [
      { interface: 'eth0', direction: 'egress', default: 'drop', rules: [{ name: 'a', match: { proto: 'udp', dport: 2 }, action: 'drop' }] },
      { interface: 'eth1', direction: 'egress' },
    ],
  });
  const d = diffPolicies(viewOfIr(v1), viewOfIr(v2));
  assert.ok(d.live);
  assert.equal(
    d.changes.map((c) => [c.kind, c.name]),
    [
      ['tc-added', 'eth1 egress'],
      ['tc-changed', 'eth0 egress'],
      ['tc-removed', 'eth0 ingress'],
    ],
  );
  const changed = d.changes[1]!;
  assert.ok(changed.kind === 'tc-changed' && changed.default?.to === 'drop' && changed.rulesChanged.length === 1 && changed.direction === 'egress');
  const text = renderDiff(d);
  for (const s of ['+ tc eth1 egress', '~ tc eth0 egress', '- tc eth0 ingress', 'default pass -> drop']) assert.ok(text.includes(s), `${s} in\n${text}`);
  assert.equal(diffPolicies(viewOfIr(v2), viewOfIr(v2)).changes, []);
  // A policy without tc sections against one with: only additions.
  const none = lowerPolicy({ name: 'p', xdp: [{ interface: 'eth0' }] });
  assert.equal(
    diffPolicies(viewOfIr(none), viewOfIr({ ...none, tc: v2.tc })).changes.map((c) => c.kind),
    ['tc-added', 'tc-added'],
  );
});

// Hostile and half-valid tc sections: an IR or a PolicyError, never another error.
const action = fc.oneof(
  fc.constantFrom('pass', 'drop', 'tx', 'redirect', 'xsk', 'toString', '', 7, null, undefined),
  fc.record({ redirect: fc.oneof(fc.constantFrom('eth1', 'a/b', ''), fc.integer()) }),
  fc.record({ xsk: fc.oneof(fc.constantFrom('g', '1x'), fc.integer()) }),
  fc.constant(Object.create(null)),
);
const match = fc.dictionary(
  fc.constantFrom('proto', 'dport', 'sport', 'vlan', 'src', 'tcpFlags', 'icmpType', 'ethType', 'constructor', '__proto__'),
  fc.oneof(fc.constantFrom('udp', 'tcp', 'icmp', 'syn', '10.0.0.0/8', 'echo-request', 'arp', 'toString'), fc.integer({ min: -1, max: 70000 }), fc.tuple(fc.integer(), fc.integer()), fc.record({ set: fc.constantFrom('ports', 'nets', 'x') })),
  { maxKeys: 4 },
);
const rule = fc.record({ name: fc.option(fc.constantFrom('r', 'r', 'x y', ''), { nil: undefined }), match: fc.option(match, { nil: undefined }), action, count: fc.option(fc.oneof(fc.boolean(), fc.integer()), { nil: undefined }) }, { requiredKeys: [] });
const section = fc.record(
  {
    interface: fc.constantFrom('eth0', 'eth1', 'a/b', '', 'toString'),
    direction: fc.oneof(fc.constantFrom('ingress', 'egress', 'both', '__proto__'), fc.integer()),
    default: action,
    malformed: fc.constantFrom('drop', 'pass', 'x'),
    mode: fc.constantFrom('native'),
    sets: fc.oneof(fc.constant({ ports: { type: 'port', elements: [53, 70000] }, nets: { type: 'ipv4-prefix', elements: ['10.0.0.0/8'] } }), fc.constant([]), fc.constant({ x: { type: 'nope' } })),
    rules: fc.oneof(fc.array(rule, { maxLength: 5 }), fc.constant(new Array(3)), fc.constant('rules')),
  },
  { requiredKeys: ['interface'] },
);

test('hostile tc sections: an IR or a PolicyError, never another error', () => {
  let irs = 0;
  let errors = 0;
  fc.assert(
    fc.property(fc.oneof(fc.array(section, { maxLength: 3 }), fc.constantFrom(undefined, null, 'tc', {}, [null])), (tc) => {
      try {
        lowerPolicy({ name: 'p', xdp: [{ interface: 'eth9' }], tc });
        irs++;
      } catch (err) {
        if (!(err instanceof PolicyError) || !err.issues.length) throw err;
        errors++;
      }
    }),
    // A twentieth of the whole-policy property's runs (test/unit/policy-hostile.test.ts).
    { numRuns: Math.ceil(Number(process.env.BPFCTL_FUZZ_RUNS ?? 100_000) / 20) },
  );
  assert.ok(irs > 0 && errors > 0, `both outcomes reached (IRs ${irs}, errors ${errors})`);
});

test.run();
