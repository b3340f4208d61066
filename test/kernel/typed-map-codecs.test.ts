import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BpfObject } from '../../loader/index.ts';
import { TypedMap } from '../../src/maps/typed-map.ts';
import { array, be16, be32, bytes, i16, SchemaError, struct, u8, u16, u32, u64 } from '../../src/schema/index.ts';
import { type BuiltFixture, buildTypedFixture } from '../fixtures/typed/build.ts';
import { counters, everything, flowKey } from '../fixtures/typed/schemas.ts';
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

function schemaError(fn: () => unknown, path: string, text: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, SchemaError, String(err));
    assert.is((err as SchemaError).path, path, (err as Error).message);
    assert.match((err as Error).message, text);
    return;
  }
  assert.unreachable('expected a SchemaError');
}

const full = {
  a: 255,
  b: -128,
  c: 65535,
  d: -32768,
  e: 0xffffffff,
  f: -2147483648,
  g: 2n ** 64n - 1n,
  h: -(2n ** 63n),
  i: 0x1234,
  j: 0xc0a80001,
  k: 0x0102030405060708n,
  mac: Uint8Array.from([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]),
  name: 'bpfctl-test',
  arr: [1, 2, 3, 65535],
  in: { x: 7, y: 8 },
  ins: [
    { x: 1, y: 2 },
    { x: 3, y: 4 },
  ],
};

test('every codec kind round-trips through a struct-valued hash map', () => {
  const m = new TypedMap(obj.map('structs'), u32, everything);
  m.set(1, full);
  assert.equal(m.get(1), full);
  assert.ok(m.has(1));
  assert.is(m.get(2), undefined);
  assert.ok(m.delete(1));
  assert.not.ok(m.delete(1));
});

test('the map BTF decodes the same value without a schema', () => {
  const typed = new TypedMap(obj.map('structs'), u32, everything);
  typed.set(5, full);
  const fromBtf = TypedMap.fromBtf(obj.map('structs'));
  const v = fromBtf.get(5) as Record<string, unknown>;
  // __be* typedef names survive in BTF, so network-order fields decode as the schema does.
  assert.equal(v, full);
  assert.is(fromBtf.key.kind, 'u32');
  typed.delete(5);
});

test('array map with u64 values and a hash map keyed by a struct', () => {
  const arr = new TypedMap(obj.map('arr'), u32, u64);
  arr.set(3, 2n ** 64n - 2n);
  assert.is(arr.get(3), 2n ** 64n - 2n);
  assert.is(arr.get(0), 0n);
  assert.is([...arr.entries()].length, 16);
  const flows = new TypedMap(obj.map('flows'), flowKey, u64);
  const key = { addr: 0x0a000001, port: 443, proto: 6, pad: 0 };
  flows.set(key, 42n);
  assert.is(flows.get(key), 42n);
  // be32/be16 in the key are network order, as the C side sees them.
  const raw = obj.map('flows').nextKey(null)!;
  assert.is(Buffer.from(raw).toString('hex'), '0a00000101bb0600');
  assert.equal([...flows.entries()], [[key, 42n]]);
  flows.delete(key);
});

test('a value that does not fit fails before the syscall, naming the field', () => {
  const m = new TypedMap(obj.map('structs'), u32, everything);
  schemaError(() => m.set(1, { ...full, a: 300 }), 'value.a', /expected u8 \(0\.\.255\), got 300/);
  schemaError(() => m.set(1, { ...full, ins: [{ x: 1, y: 2 }, { x: -1, y: 0 }] }), 'value.ins[1].x', /expected u32/);
  schemaError(() => m.set(-1, full), 'key', /expected u32/);
  assert.not.ok(m.has(1));
});

test('sizes are checked against the map when wrapping it', () => {
  schemaError(() => new TypedMap(obj.map('arr'), u32, u32), 'value', /8-byte values, the schema __u32 is 4 bytes/);
  schemaError(() => new TypedMap(obj.map('arr'), u16, u64), 'key', /4-byte keys/);
});

test('BTF mismatches name the field: offset, signedness, shape', () => {
  const swapped = struct('counters', { bytes: u64, msgs: u64, drops: u64 });
  schemaError(() => new TypedMap(obj.map('pcpu'), u32, swapped), 'value.bytes', /BTF mismatch: offset differs: 0 in the schema, 8 in the BTF/);
  const key = struct('flow_key', { addr: be32, port: i16, proto: u8, pad: u8 });
  schemaError(() => new TypedMap(obj.map('flows'), key, u64), 'key.port', /signedness differs/);
  const renamed = struct('flow_key', { addr: be32, dport: be16, proto: u8, pad: u8 });
  schemaError(() => new TypedMap(obj.map('flows'), renamed, u64), 'key.dport', /has no field dport/);
  const shape = struct('flow_key', { addr: array(u8, 4), port: be16, proto: u8, pad: u8 });
  schemaError(() => new TypedMap(obj.map('flows'), shape, u64), 'key.addr', /not an array: the schema has __u8\[4\] \(4 bytes\), the BTF has __be32/);
  // bytes(n) is the opaque escape hatch; checkBtf: false skips the check entirely.
  new TypedMap(obj.map('flows'), bytes(8), u64);
  new TypedMap(obj.map('flows'), key, u64, { checkBtf: false });
  new TypedMap(obj.map('pcpu'), u32, counters);
});

test('maps without BTF work with schemas and refuse fromBtf', () => {
  const m = BpfMap.create({ type: 'hash', name: 'typed_nobtf', keySize: 4, valueSize: 8, maxEntries: 4 });
  try {
    const t = new TypedMap(m, u32, u64);
    t.set(1, 2n);
    assert.is(t.get(1), 2n);
    schemaError(() => TypedMap.fromBtf(m), '', /has no BTF/);
  } finally {
    m.close();
  }
});

test('nothing leaks', async () => {
  obj.close();
  fixture.remove();
  assert.equal(await leaksSince(before), []);
});

test.run();
