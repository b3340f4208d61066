import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfObject } from '../../loader/index.ts';
import { TypedMap } from '../../src/maps/typed-map.ts';
import { SchemaError, u32, u64 } from '../../src/schema/index.ts';
import { type BuiltFixture, buildTypedFixture } from '../fixtures/typed/build.ts';
import { flowKey } from '../fixtures/typed/schemas.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';

// Loaded in before(): uvu imports every test file up front, and objects made at import time
// would show up in other files' leak checks.
let before: Snapshot;
let fixture: BuiltFixture;
let obj: BpfObject;

test.before(() => {
  before = snapshot();
  fixture = buildTypedFixture();
  obj = BpfObject.open(fixture.object);
  obj.load();
});

const N = 10_000;
const keyOf = (i: number) => ({ addr: 0x0a000000 + i, port: i % 65536, proto: i % 2 ? 6 : 17, pad: 0 });
const keyId = (k: { addr: number }) => k.addr - 0x0a000000;

test('10k entries: setMany, entries, getMany, deleteMany', () => {
  const flows = new TypedMap(obj.map('flows'), flowKey, u64);
  const t0 = performance.now();
  flows.setMany(Array.from({ length: N }, (_, i) => [keyOf(i), BigInt(i) * 3n] as const));
  const t1 = performance.now();
  const all = [...flows.entries()];
  const t2 = performance.now();
  assert.is(all.length, N);
  for (const [k, v] of all) assert.is(v, BigInt(keyId(k)) * 3n);
  assert.is(flows.count(), N);

  const wanted = Array.from({ length: N }, (_, i) => keyOf(i));
  wanted.push(keyOf(N + 5));
  const t3 = performance.now();
  const got = flows.getMany(wanted);
  const t4 = performance.now();
  assert.is(got.length, N + 1);
  assert.is(got[1234], 3702n);
  assert.is(got[N], undefined);
  // A few keys take the per-key path.
  assert.equal(flows.getMany([keyOf(7), keyOf(N + 1)]), [21n, undefined]);

  const t5 = performance.now();
  assert.is(flows.deleteMany(wanted.slice(0, N / 2)), N / 2);
  const t6 = performance.now();
  assert.is(flows.count(), N / 2);
  // An absent key in the middle: the rest are still deleted.
  const mixed = [keyOf(N / 2), keyOf(1), keyOf(N / 2 + 1)];
  assert.is(flows.deleteMany(mixed), 2);
  assert.is(flows.clear(), N / 2 - 2);
  assert.is(flows.count(), 0);
  const us = (a: number, b: number) => `${(((b - a) * 1000) / N).toFixed(2)} us/entry`;
  process.stderr.write(`  setMany ${us(t0, t1)}, entries ${us(t1, t2)}, getMany ${us(t3, t4)}, deleteMany ${us(t5, t6) /* of N/2 */}\n`);
});

test('a bad entry in setMany writes nothing', () => {
  const flows = new TypedMap(obj.map('flows'), flowKey, u64);
  try {
    flows.setMany([
      [keyOf(1), 1n],
      [keyOf(2), -1n],
    ]);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, SchemaError);
    assert.is((err as SchemaError).path, 'entries[1].value');
  }
  assert.is(flows.count(), 0);
});

test('array maps: batch update and read of every index', () => {
  const arr = new TypedMap(obj.map('arr'), u32, u64);
  arr.setMany(Array.from({ length: 16 }, (_, i) => [i, BigInt(i * i)] as const));
  assert.equal(
    [...arr.entries()].map(([k, v]) => [k, v]),
    Array.from({ length: 16 }, (_, i) => [i, BigInt(i * i)]),
  );
  assert.equal([...arr.keys()], Array.from({ length: 16 }, (_, i) => i));
});

test('nothing leaks', async () => {
  obj.close();
  fixture.remove();
  assert.equal(await leaksSince(before), []);
});

test.run();
