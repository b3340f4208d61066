import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  alignOf,
  array,
  be16,
  be32,
  be64,
  bytes,
  type Codec,
  cstring,
  DESC_OFFSETS,
  DESC_SIZE,
  decode,
  descriptor,
  encode,
  encodeInto,
  i8,
  i16,
  i32,
  i64,
  SchemaError,
  sizeOf,
  struct,
  u8,
  u16,
  u32,
  u64,
} from '../../src/schema/index.ts';

function roundTrip<T>(codec: Codec<T>, value: T, hex?: string): void {
  const b = encode(codec, value);
  assert.is(b.length, codec.size);
  if (hex !== undefined) assert.is(Buffer.from(b).toString('hex'), hex, `${codec.kind} bytes`);
  assert.equal(decode(codec, b), value);
}

function throwsSchema(fn: () => unknown, path: string, text: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, SchemaError);
    assert.is((err as SchemaError).path, path);
    assert.match((err as SchemaError).message, text);
    assert.is((err as SchemaError).code, 'E_SCHEMA');
    return;
  }
  assert.unreachable('expected a SchemaError');
}

test('unsigned integers round-trip at their limits, little-endian', () => {
  roundTrip(u8, 0, '00');
  roundTrip(u8, 255, 'ff');
  roundTrip(u16, 0x1234, '3412');
  roundTrip(u16, 65535);
  roundTrip(u32, 0xdeadbeef, 'efbeadde');
  roundTrip(u64, 2n ** 64n - 1n, 'ffffffffffffffff');
  roundTrip(u64, 0x0102030405060708n, '0807060504030201');
});

test('signed integers round-trip at their limits', () => {
  roundTrip(i8, -128, '80');
  roundTrip(i8, 127);
  roundTrip(i16, -1, 'ffff');
  roundTrip(i16, -32768);
  roundTrip(i32, -2147483648, '00000080');
  roundTrip(i32, 2147483647);
  roundTrip(i64, -(2n ** 63n), '0000000000000080');
  roundTrip(i64, 2n ** 63n - 1n);
});

test('big-endian kinds are network order', () => {
  roundTrip(be16, 8080, '1f90');
  roundTrip(be32, 0xc0a80001, 'c0a80001');
  roundTrip(be64, 0x0102030405060708n, '0102030405060708');
});

test('64-bit codecs take exact numbers too', () => {
  assert.is(Buffer.from(encode(u64, 5 as unknown as bigint)).toString('hex'), '0500000000000000');
  throwsSchema(() => encode(u64, 2 ** 60 as unknown as bigint), '', /expected u64/);
});

test('bytes and cstring', () => {
  roundTrip(bytes(4), Uint8Array.from([1, 2, 3, 4]), '01020304');
  roundTrip(cstring(8), 'eth0', '6574683000000000');
  roundTrip(cstring(4), 'abcd', '61626364');
  roundTrip(cstring(8), 'né', '6ec3a90000000000');
  throwsSchema(() => encode(bytes(4), Uint8Array.from([1, 2])), '', /expected 4 bytes, got 2/);
  throwsSchema(() => encode(cstring(4), 'abcde'), '', /at most 4 bytes, got 5/);
  // decoded bytes must not alias the source buffer
  const src = Uint8Array.from([9, 9]);
  const d = decode(bytes(2), src);
  src[0] = 0;
  assert.is(d[0], 9);
});

test('arrays, nested arrays and arrays of structs', () => {
  roundTrip(array(u16, 3), [1, 2, 0xffff], '01000200ffff');
  roundTrip(array(array(u8, 2), 2), [[1, 2], [3, 4]], '01020304');
  const pt = struct('pt', { x: u8, y: u32 });
  roundTrip(array(pt, 2), [{ x: 1, y: 2 }, { x: 3, y: 4 }], '01000000020000000300000004000000');
  throwsSchema(() => encode(array(u8, 3), [1, 2]), '', /array of 3, got 2 elements/);
  throwsSchema(() => encode(array(pt, 2), [{ x: 1, y: 2 }, { x: 1, y: -1 }]), '[1].y', /expected u32/);
});

test('struct layout follows the C rules', () => {
  const s = struct('s', { a: u8, b: u64, c: u16, d: u8 });
  assert.equal(s.fields.map((f) => f.offset), [0, 8, 16, 18]);
  assert.is(sizeOf(s), 24);
  assert.is(alignOf(s), 8);
  const packed = struct('p', { a: u8, b: u32 }, { packed: true });
  assert.is(packed.size, 5);
  assert.is(packed.align, 1);
  assert.equal(packed.fields.map((f) => f.offset), [0, 1]);
  const aligned = struct('al', { a: u8 }, { align: 16 });
  assert.is(aligned.size, 16);
  assert.is(aligned.align, 16);
  const nested = struct('n', { a: u8, inner: s, z: u8 });
  assert.equal(nested.fields.map((f) => f.offset), [0, 8, 32]);
  assert.is(nested.size, 40);
  roundTrip(s, { a: 1, b: 2n, c: 3, d: 4 }, '01000000000000000200000000000000030004000000000' + '0');
});

test('struct errors name the field path', () => {
  const inner = struct('inner', { port: be16, addr: array(u8, 4) });
  const outer = struct('outer', { hdr: inner, n: u32 });
  throwsSchema(() => encode(outer, { hdr: { port: 70000, addr: [1, 2, 3, 4] }, n: 1 }), 'hdr.port', /expected be16 \(0\.\.65535\), got 70000/);
  throwsSchema(() => encode(outer, { hdr: { port: 1, addr: [1, 2, 3, 256] }, n: 1 }), 'hdr.addr[3]', /expected u8/);
  throwsSchema(() => encode(outer, { hdr: { port: 1 }, n: 1 } as never), 'hdr.addr', /missing/);
  throwsSchema(() => encode(outer, 5 as never), '', /expected struct outer/);
  throwsSchema(() => encode(u8, 300), '', /expected u8 \(0\.\.255\), got 300/);
  throwsSchema(() => encode(u8, 1.5), '', /expected u8/);
  throwsSchema(() => encode(i8, -129), '', /expected i8 \(-128\.\.127\)/);
  throwsSchema(() => encode(u32, '5' as never), '', /got "5"/);
});

test('struct definitions are checked', () => {
  throwsSchema(() => struct('bad name', { a: u8 }), '', /not a C identifier/);
  throwsSchema(() => struct('s', { '1': u8 }), 's', /not a C identifier/);
  throwsSchema(() => struct('s', {}), '', /no fields/);
  throwsSchema(() => struct('s', { a: u8 }, { align: 3 }), '', /power of two/);
});

test('compiled struct codecs take the slow path for unusual but valid input', () => {
  const s = struct('mix', { a: u32, b: u64, c: i8 });
  const b = encode(s, { a: 5n as unknown as number, b: 7 as unknown as bigint, c: -1 });
  assert.equal(decode(s, b), { a: 5, b: 7n, c: -1 });
  throwsSchema(() => encode(s, { a: 1, b: -1n, c: 0 }), 'b', /expected u64/);
  throwsSchema(() => encode(s, { a: 1, b: 1n, c: 128 }), 'c', /expected i8/);
  throwsSchema(() => encode(s, null as never), '', /expected struct mix \(an object\), got null/);
});

test('encodeInto fills a slice of a bigger buffer and zeroes its padding', () => {
  const s = struct('pad', { a: u8, b: u32 });
  const buf = new Uint8Array(16).fill(0xee);
  encodeInto(s, { a: 1, b: 2 }, buf, 8);
  assert.is(Buffer.from(buf).toString('hex'), 'eeeeeeeeeeeeeeee0100000002000000');
  throwsSchema(() => encodeInto(s, { a: 1, b: 2 }, buf, 9), '', /no room for 8 bytes at offset 9/);
});

test('decode checks the length', () => {
  throwsSchema(() => decode(u32, new Uint8Array(3)), '', /expected 4 bytes for __u32, got 3/);
});

test('the descriptor is 24 bytes at the documented offsets', () => {
  assert.is(descriptor.size, DESC_SIZE);
  assert.equal(DESC_OFFSETS, { route: 0, hop: 2, flags: 3, gw_inst: 4, status: 6, req_id: 8, buf_off: 12, buf_len: 16, buf_gen: 20 });
  const d = { route: 0x0102, hop: 3, flags: 1, gw_inst: 0x0405, status: 500, req_id: 0x0a0b0c0d, buf_off: 4096, buf_len: 17, buf_gen: 9 };
  roundTrip(descriptor, d, '020103010504f4010d0c0b0a0010000011000000' + '09000000');
});

test.run();
