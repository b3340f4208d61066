/**
 * The route view gateways and functions resolve requests and descriptors with: a fixed table from
 * an IR (staticRouteTable; the live one reads the same entries from the mapped `routes` map, see
 * test/kernel/runtime-gateway.test.ts). Route ids of a loaded policy are its starting slots.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { methodBits } from '../../src/ir/chain-maps.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';
import { routePath, staticRouteTable } from '../../src/runtime/route-table.ts';

const ir = lowerPolicy({
  name: 'rt',
  functions: { a: { instances: 1, handler: './a.ts' }, b: { instances: 1, handler: './b.ts' } },
  routes: { '/ab': ['a', 'b'], plain: ['b'], '/get/': { functions: ['a'], methods: ['GET'] } },
  pool: { bufferSize: 4096, bufferCount: 4 },
});

test('paths: names that are not paths are served at /name; a trailing slash is the same route', () => {
  assert.is(routePath('plain'), '/plain');
  assert.is(routePath('/ab'), '/ab');
  const t = staticRouteTable(ir);
  assert.is(t.byPath('/ab')!.name, '/ab');
  assert.is(t.byPath('/ab/'), t.byPath('/ab'));
  assert.is(t.byPath('/plain')!.name, 'plain');
  assert.is(t.byPath('/plain/'), t.byPath('/plain'));
  assert.is(t.byPath('plain'), undefined, 'request paths start with /');
  assert.is(t.byPath('/get')!.name, '/get/');
  assert.is(t.byPath('/get/'), t.byPath('/get'));
  assert.is(t.byPath('/nope'), undefined);
  assert.is(t.byPath('/'), undefined);
});

test('entries: slot = route id, length, hops, method bits, version 1', () => {
  const t = staticRouteTable(ir);
  const ab = t.bySlot(0)!;
  assert.equal([ab.slot, ab.name, ab.len, [...ab.hops], ab.version], [0, '/ab', 2, [1, 2], 1]);
  assert.is(ab.methods, methodBits(['POST']));
  const get = t.bySlot(2)!;
  assert.is(get.methods, methodBits(['GET', 'HEAD']));
  assert.is(t.bySlot(3), undefined);
  assert.is(t.bySlot(1023), undefined);
  assert.equal(
    t.current().map((e) => e.name),
    ['/ab', 'plain', '/get/'],
  );
});

test.run();
