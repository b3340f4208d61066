import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  array,
  be16,
  type BtfType,
  bytes,
  checkAgainstBtf,
  codecFromBtf,
  countersValue,
  cstring,
  decode,
  encode,
  i16,
  SchemaError,
  struct,
  u8,
  u16,
  u32,
  u64,
} from '../../src/schema/index.ts';

const int = (name: string, size: number, signed = false): BtfType => ({ kind: 'int', name, size, signed });
const U32 = int('unsigned int', 4);
const U64 = int('long long unsigned int', 8);
const U16 = int('short unsigned int', 2);
const CHAR = int('char', 1, true);
const U8 = int('unsigned char', 1);

const countersBtf: BtfType = {
  kind: 'struct',
  name: 'bpfctl_counters',
  size: 24,
  members: [
    { name: 'msgs', offsetBits: 0, type: U64 },
    { name: 'bytes', offsetBits: 64, type: U64 },
    { name: 'drops', offsetBits: 128, type: U64 },
  ],
};

const flowBtf: BtfType = {
  kind: 'struct',
  name: 'flow',
  size: 16,
  members: [
    { name: 'port', offsetBits: 0, type: int('__be16', 2) },
    { name: 'delta', offsetBits: 16, type: int('short', 2, true) },
    { name: 'mac', offsetBits: 32, type: { kind: 'array', elem: U8, len: 6, size: 6 } },
    { name: 'comm', offsetBits: 80, type: { kind: 'array', elem: CHAR, len: 4, size: 4 } },
    { name: 'kind', offsetBits: 112, type: { kind: 'enum', name: 'k', size: 2 } },
  ],
};

function fails(fn: () => unknown, path: string, text: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, SchemaError);
    assert.is((err as SchemaError).path, path, (err as Error).message);
    assert.match((err as Error).message, text);
    return;
  }
  assert.unreachable('expected a SchemaError');
}

test('codecs from BTF integers', () => {
  assert.is(codecFromBtf(U32).kind, 'u32');
  assert.is(codecFromBtf(int('int', 4, true)).kind, 'i32');
  assert.is(codecFromBtf(U64).kind, 'u64');
  assert.is(codecFromBtf(int('__be32', 4)).kind, 'be32');
  assert.is(codecFromBtf({ kind: 'enum', name: 'e', size: 4 }).kind, 'u32');
  assert.is(codecFromBtf({ kind: 'ptr', name: '', size: 8 }).kind, 'u64');
  assert.is(codecFromBtf(int('__int128', 16)).kind, 'bytes');
  assert.is(codecFromBtf({ kind: 'union', name: 'u', size: 8, members: [] }).kind, 'bytes');
});

test('a struct from BTF decodes like the hand-written schema', () => {
  const c = codecFromBtf(countersBtf);
  assert.is(c.kind, 'struct');
  const v = { msgs: 1n, bytes: 2n, drops: 3n };
  assert.equal(decode(c, encode(countersValue, v)), v);
  checkAgainstBtf(countersValue, countersBtf);
  checkAgainstBtf(c, countersBtf);
});

test('char arrays become strings, byte arrays bytes', () => {
  const c = codecFromBtf(flowBtf);
  const v = decode(c, encode(c, { port: 80, delta: -2, mac: Uint8Array.from([1, 2, 3, 4, 5, 6]), comm: 'ab', kind: 7 }));
  assert.equal(v, { port: 80, delta: -2, mac: Uint8Array.from([1, 2, 3, 4, 5, 6]), comm: 'ab', kind: 7 });
  checkAgainstBtf(struct('flow', { port: be16, delta: i16, mac: bytes(6), comm: cstring(4), kind: u16 }), flowBtf);
});

test('bitfields and overlaps stay opaque; anonymous structs flatten', () => {
  const bits: BtfType = { kind: 'struct', name: 'b', size: 4, members: [{ name: 'a', offsetBits: 0, type: U32 }, { name: 'b', offsetBits: 4, type: U32 }] };
  assert.is(codecFromBtf(bits).kind, 'bytes');
  const anon: BtfType = {
    kind: 'struct',
    name: 'o',
    size: 8,
    members: [
      { name: 'x', offsetBits: 0, type: U32 },
      { name: '', offsetBits: 32, type: { kind: 'struct', name: '', size: 4, members: [{ name: 'y', offsetBits: 0, type: U16 }, { name: 'z', offsetBits: 16, type: U16 }] } },
    ],
  };
  const c = codecFromBtf(anon);
  assert.equal(decode(c, Uint8Array.from([1, 0, 0, 0, 2, 0, 3, 0])), { x: 1, y: 2, z: 3 });
  checkAgainstBtf(struct('o', { x: u32, y: u16, z: u16 }), anon);
});

test('packed BTF layouts keep their offsets', () => {
  const packed: BtfType = { kind: 'struct', name: 'p', size: 5, members: [{ name: 'a', offsetBits: 0, type: U8 }, { name: 'b', offsetBits: 8, type: U32 }] };
  const c = codecFromBtf(packed);
  assert.is(c.align, 1);
  assert.equal(decode(c, Uint8Array.from([1, 2, 0, 0, 0])), { a: 1, b: 2 });
});

test('arrays of structs from BTF', () => {
  const arr: BtfType = { kind: 'array', elem: countersBtf, len: 2, size: 48 };
  const c = codecFromBtf(arr);
  assert.is(c.kind, 'array');
  checkAgainstBtf(array(countersValue, 2), arr);
});

test('mismatches name the field and what differs', () => {
  fails(() => checkAgainstBtf(u64, U32), '', /size differs: the schema has __u64 \(8 bytes\), the BTF has unsigned int/);
  fails(() => checkAgainstBtf(struct('c', { msgs: u64, bytes: u64, drops: array(u32, 2) }), countersBtf), 'drops', /not an array/);
  fails(() => checkAgainstBtf(struct('c', { msgs: u64, drops: u64, bytes: u64 }), countersBtf), 'drops', /offset differs: 8 in the schema, 16 in the BTF/);
  fails(() => checkAgainstBtf(struct('c', { msgs: u64, bytes: u64, dropped: u64 }), countersBtf), 'dropped', /has no field dropped/);
  fails(() => checkAgainstBtf(struct('f', { port: be16, delta: u16, mac: bytes(6), comm: cstring(4), kind: u16 }), flowBtf), 'delta', /signedness differs: the schema has u16 \(unsigned\), the BTF has short \(signed/);
  fails(() => checkAgainstBtf(struct('f', { port: u16, delta: i16, mac: bytes(6), comm: cstring(4), kind: u16 }), flowBtf), 'port', /byte order/);
  fails(() => checkAgainstBtf(struct('f', { port: be16, delta: i16, mac: array(u16, 3), comm: cstring(4), kind: u16 }), flowBtf), 'mac', /length differs \(3 vs 6\)/);
  fails(() => checkAgainstBtf(array(countersValue, 3), { kind: 'array', elem: countersBtf, len: 2, size: 72 } as BtfType), '', /length differs/);
  const twoU64: BtfType = { kind: 'struct', name: 'two', size: 16, members: [{ name: 'a', offsetBits: 0, type: U64 }, { name: 'b', offsetBits: 64, type: U64 }] };
  fails(() => checkAgainstBtf(struct('two', { a: u64, b: u32, c: u32 }), twoU64), 'b', /size differs/);
  fails(() => checkAgainstBtf(struct('two', { a: u64, b: u8 }), twoU64), 'b', /size differs: the schema has __u8 \(1 byte\)/);
  fails(() => checkAgainstBtf(bytes(3), U32), '', /size differs/);
  checkAgainstBtf(bytes(24), countersBtf);
});

test.run();
