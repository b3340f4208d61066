/**
 * `diff` and `apply` on packet chains: what can change live (instance counts; steering is an XDP
 * change) and what needs --restart (functions, their code or env, chains), as PolicyDiff and as
 * people read it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { diffPolicies, PACKET_RESTART_REASON, viewOfIr } from '../../src/deploy/diff.ts';
import { renderDiff } from '../../src/deploy/diff-render.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';

// biome-ignore lint/suspicious/noExplicitAny: specs are mutated freely per case; lowerPolicy validates them
type Spec = any;

function spec(): Spec {
  return {
    name: 'edge',
    pool: { bufferSize: 2048, bufferCount: 1024 },
    packetFunctions: {
      nat: { handler: './nf/snat.c', env: { SNAT_ADDR: '192.0.2.1', SNAT_PORTS: '20000-20999' } },
      count: { handler: './nf/count.c', instances: 1 },
    },
    packetChains: { 'tenant-nat': { functions: ['nat', 'count'], egress: { tx: 'uplink0' } } },
    xdp: [{ interface: 'tenant0', rules: [{ name: 'tenant', match: { proto: 'udp' }, action: { chain: 'tenant-nat' } }] }],
  };
}

const view = (s: Spec) => viewOfIr(lowerPolicy(s, { baseDir: '/srv/edge' }));
const diff = (a: Spec, b: Spec) => diffPolicies(view(a), view(b));

test('the same packet part: no change', () => {
  const d = diff(spec(), spec());
  assert.equal(d.changes, []);
  assert.ok(d.live);
});

test('an instance count changes live', () => {
  const next = spec();
  next.packetFunctions.count.instances = 3;
  const d = diff(spec(), next);
  assert.equal(d.changes, [{ kind: 'packet-function-scaled', action: 'live', name: 'count', from: 1, to: 3 }]);
  assert.ok(d.live);
  assert.match(renderDiff(d), /~ packet\s+count\s+instances 1 -> 3/);
});

test('steering another flow is an XDP change, live', () => {
  const next = spec();
  next.xdp[0].rules[0].match = { proto: 'tcp' };
  const d = diff(spec(), next);
  assert.equal(
    d.changes.map((c) => [c.kind, c.action]),
    [['xdp-changed', 'live']],
  );
});

test('env, handler, a new function or another chain need a restart, with the reason', () => {
  const env = spec();
  env.packetFunctions.nat.env.SNAT_ADDR = '192.0.2.2';
  const handler = spec();
  handler.packetFunctions.count.handler = './nf/count2.c';
  const added = spec();
  added.packetFunctions.macswap = { handler: './nf/macswap.c' };
  const chain = spec();
  chain.packetChains['tenant-nat'].egress = 'drop';
  // pktio takes a chain's coalescing on its command line: turning it on is a restart
  const coalesce = spec();
  coalesce.packetChains['tenant-nat'].coalesce = { us: 200 };
  for (const [what, next, name] of [
    ['env', env, 'nat'],
    ['handler', handler, 'count'],
    ['added', added, 'macswap'],
    ['chain', chain, 'tenant-nat'],
    ['coalesce', coalesce, 'tenant-nat'],
  ] as const) {
    const d = diff(spec(), next);
    assert.not.ok(d.live, what);
    assert.equal(d.restartReasons, [PACKET_RESTART_REASON], what);
    assert.ok(
      d.changes.some((c) => c.kind === 'packet-changed' && c.name === name),
      `${what}: ${JSON.stringify(d.changes)}`,
    );
    assert.match(renderDiff(d), /! packet .*needs --restart/, what);
  }
});

test('a policy without packet parts keeps its view (no packet key)', () => {
  const s = spec();
  delete s.packetFunctions;
  delete s.packetChains;
  s.xdp[0].rules[0].action = 'pass';
  assert.not.ok('packet' in view(s));
});

test.run();
