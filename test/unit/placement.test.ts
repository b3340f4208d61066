/**
 * Placement (docs/multi-node.md): validation through the one engine with paths, the spread of a
 * function's instances over named nodes, label matching, and that a policy without placement
 * lowers to the IR it always had (so one-machine policies, their hashes and goldens, are unchanged).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PolicyError } from '../../src/ir/issues.ts';
import { localInstances, localShare } from '../../src/ir/placement.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';

const base = (placement?: unknown, instances = 3) => ({
  name: 'p',
  functions: { a: { instances, handler: './a.ts', ...(placement === undefined ? {} : { placement }) }, b: { instances: 1, handler: './b.ts' } },
  routes: { '/x': ['a', 'b'] },
});

function issues(spec: unknown): { path: string; message: string }[] {
  try {
    lowerPolicy(spec);
  } catch (err) {
    assert.instance(err, PolicyError);
    return [...(err as PolicyError).issues];
  }
  assert.unreachable('the policy validated');
  return [];
}

test('no placement: the IR has no placement key and the same hash as before', () => {
  const ir = lowerPolicy(base());
  assert.not.ok('placement' in ir.functions[0]!);
  const withNodes = lowerPolicy(base({ nodes: ['n1'] }));
  assert.equal(withNodes.functions[0]!.placement, { nodes: ['n1'] });
  assert.is.not(withNodes.hash, ir.hash);
});

test('names spread the total over the listed nodes, the first ones taking the remainder', () => {
  const ir = lowerPolicy(base({ nodes: ['n1', 'n2'] }, 3));
  const f = ir.functions[0]!;
  assert.is(localInstances(f, { name: 'n1', labels: {} }), 2);
  assert.is(localInstances(f, { name: 'n2', labels: {} }), 1);
  assert.is(localInstances(f, { name: 'n3', labels: {} }), 0);
  // unplaced functions run everywhere
  assert.equal(
    localShare(ir, { name: 'n3', labels: {} }).functions.map((x) => x.instances),
    [0, 1],
  );
});

test('labels: every matching node runs all instances, others none', () => {
  const f = lowerPolicy(base({ labels: { zone: 'x', 'topology.kubernetes.io/region': 'eu-1' } })).functions[0]!;
  assert.is(localInstances(f, { name: 'q', labels: { zone: 'x', 'topology.kubernetes.io/region': 'eu-1', other: '1' } }), 3);
  assert.is(localInstances(f, { name: 'q', labels: { zone: 'x' } }), 0);
});

test('bad placements are reported with their paths, all in one run', () => {
  const found = issues({
    ...base(),
    functions: {
      a: { instances: 1, handler: './a.ts', placement: { nodes: ['n1', 'N_2', 'n1'] } },
      b: { instances: 1, handler: './b.ts', placement: { nodes: ['n1'], labels: { z: 'y' } } },
      c: { instances: 1, handler: './c.ts', placement: { labels: { 'bad key!': 'v', ok: 7 } } },
      d: { instances: 1, handler: './d.ts', placement: { nodes: ['n1', 'n2'] } },
      e: { instances: 1, handler: './e.ts', placement: { node: 'n1' } },
      f: { instances: 1, handler: './f.ts', placement: 'n1' },
      g: { instances: 1, handler: './g.ts', placement: { nodes: ['n1'], spill: 'no' } },
    },
    routes: { '/x': ['a', 'b', 'c', 'd', 'e', 'f', 'g'] },
  });
  const at = (p: string) => found.filter((i) => i.path === p).map((i) => i.message);
  assert.match(at('functions.a.placement.nodes[1]')[0] ?? '', /DNS name/);
  assert.match(at('functions.a.placement.nodes[2]')[0] ?? '', /listed twice/);
  assert.match(at('functions.b.placement')[0] ?? '', /exactly one of nodes/);
  assert.match(at("functions.c.placement.labels['bad key!']")[0] ?? '', /not a Kubernetes label key/);
  assert.match(at('functions.c.placement.labels.ok')[0] ?? '', /label value must be a string/);
  assert.match(at('functions.d.placement.nodes')[0] ?? '', /1 instance cannot be spread over 2 nodes/);
  assert.match(at('functions.e.placement.node')[0] ?? '', /unknown setting 'node'/);
  assert.match(at('functions.f.placement')[0] ?? '', /must be an object/);
  assert.match(at('functions.g.placement.spill')[0] ?? '', /spill must be true or false, got/);
});

test('spill: only `false` is kept in the IR (the default, true, lowers to what it was before)', () => {
  const plain = lowerPolicy(base({ nodes: ['n1'] }));
  const on = lowerPolicy(base({ nodes: ['n1'], spill: true }));
  const off = lowerPolicy(base({ labels: { z: 'y' }, spill: false }));
  assert.equal(on.functions[0]!.placement, { nodes: ['n1'] });
  assert.is(on.hash, plain.hash);
  assert.equal(off.functions[0]!.placement, { labels: { z: 'y' }, spill: false });
});

test.run();
