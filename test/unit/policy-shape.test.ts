/** Which parts a policy may leave out: a chain, XDP sections, or both, but not neither. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { drop, xdpSection } from '../../src/dsl/index.ts';
import { DEFAULT_POOL, lowerPolicy, PolicyError } from '../../src/ir/policy.ts';

test('a policy of XDP sections only has no functions, routes or gateway traffic', () => {
  const ir = lowerPolicy({ name: 'fw', xdp: [xdpSection({ interface: 'eth9', rules: [drop({ proto: 'udp', dport: 9 })] })] });
  assert.equal(ir.functions, []);
  assert.equal(ir.routes, []);
  assert.is(ir.xdp.length, 1);
});

test('a chain without a pool gets the default pool', () => {
  const ir = lowerPolicy({ name: 'c', functions: { a: { instances: 1, handler: './a.ts' } }, routes: { '/a': ['a'] } });
  assert.equal(ir.pool, { ...DEFAULT_POOL });
});

test('a policy with neither a chain nor XDP sections is refused', () => {
  try {
    lowerPolicy({ name: 'empty' });
    assert.unreachable('lowerPolicy accepted an empty policy');
  } catch (err) {
    assert.instance(err, PolicyError);
    assert.match((err as Error).message, /needs a chain \(functions and routes\), xdp or tc sections, or both/);
  }
});

test('routes without functions are still an error that names functions', () => {
  try {
    lowerPolicy({ name: 'half', routes: { '/a': ['a'] } });
    assert.unreachable('lowerPolicy accepted routes without functions');
  } catch (err) {
    assert.instance(err, PolicyError);
    assert.is((err as PolicyError).path, 'functions');
  }
});

test.run();
