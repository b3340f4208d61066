import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { array, be16, bytes, cstring, fromJson, i8, i32, i64, parseHexBytes, parseLiteral, SchemaError, struct, u8, u16, u32, u64 } from '../../src/schema/index.ts';

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

test('integers: decimal, hex, octal, binary, signs', () => {
  assert.is(parseLiteral(u32, '42'), 42);
  assert.is(parseLiteral(u32, ' 0x2A '), 42);
  assert.is(parseLiteral(u32, '0XfF'), 255);
  assert.is(parseLiteral(u16, '0o17'), 15);
  assert.is(parseLiteral(u8, '0b101'), 5);
  assert.is(parseLiteral(u32, '1_000_000'), 1000000);
  assert.is(parseLiteral(i8, '-128'), -128);
  assert.is(parseLiteral(i32, '-0x10'), -16);
  assert.is(parseLiteral(be16, '8080'), 8080);
  assert.is(parseLiteral(u64, '18446744073709551615'), 18446744073709551615n);
  assert.is(parseLiteral(i64, '-9223372036854775808'), -9223372036854775808n);
});

test('integer errors say what was expected', () => {
  fails(() => parseLiteral(u8, '300'), '', /expected u8 \(0\.\.255\), got 300/);
  fails(() => parseLiteral(u8, '-1'), '', /expected u8/);
  fails(() => parseLiteral(u32, 'abc'), '', /expected an integer for u32 \(decimal or 0x hex\), got "abc"/);
  fails(() => parseLiteral(u32, '1.5'), '', /expected an integer/);
  fails(() => parseLiteral(u64, '18446744073709551616'), '', /expected u64/);
  fails(() => parseLiteral(u32, ''), '', /expected an integer/);
});

test('hex bytes in several spellings', () => {
  assert.equal([...parseLiteral(bytes(3), '0a0b0c')], [10, 11, 12]);
  assert.equal([...parseLiteral(bytes(2), '0x0a0B')], [10, 11]);
  assert.equal([...parseLiteral(bytes(6), 'aa:bb:cc:dd:ee:ff')], [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
  assert.equal([...parseHexBytes('de ad be ef')], [0xde, 0xad, 0xbe, 0xef]);
  fails(() => parseLiteral(bytes(3), '0a0b'), '', /expected 3 bytes as hex .*, got 2 bytes/);
  fails(() => parseLiteral(bytes(2), 'xyz'), '', /expected 2 bytes as hex/);
  fails(() => parseLiteral(bytes(2), 'abc'), '', /expected 2 bytes as hex/);
});

test('strings', () => {
  assert.is(parseLiteral(cstring(16), 'eth0'), 'eth0');
  assert.is(parseLiteral(cstring(16), '"with space"'), 'with space');
  fails(() => parseLiteral(cstring(4), 'too long'), '', /at most 4 bytes/);
});

test('arrays as JSON or a bare list', () => {
  assert.equal(parseLiteral(array(u16, 3), '[1, 2, 3]'), [1, 2, 3]);
  assert.equal(parseLiteral(array(u16, 3), '1,2,0xffff'), [1, 2, 65535]);
  fails(() => parseLiteral(array(u16, 3), '[1,2]'), '', /array of 3, got 2 elements/);
  fails(() => parseLiteral(array(u8, 2), '[1, 256]'), '[1]', /expected u8/);
  fails(() => parseLiteral(array(u8, 2), '[1, '), '', /in JSON/);
});

const flow = struct('flow', { saddr: bytes(4), sport: be16, proto: u8, tags: array(u16, 2), big: u64, name: cstring(8) });

test('structs from JSON objects', () => {
  const v = parseLiteral(flow, '{"saddr":"c0a80001","sport":443,"proto":"6","tags":[1,2],"big":"0xffffffffffffffff","name":"x"}');
  assert.equal([...v.saddr], [192, 168, 0, 1]);
  assert.is(v.sport, 443);
  assert.is(v.proto, 6);
  assert.equal(v.tags, [1, 2]);
  assert.is(v.big, 2n ** 64n - 1n);
  assert.is(v.name, 'x');
  assert.equal([...fromJson(flow, { ...v, saddr: [1, 2, 3, 4] }).saddr], [1, 2, 3, 4]);
});

test('struct errors name the field', () => {
  const ok = { saddr: '00000000', sport: 1, proto: 1, tags: [1, 2], big: 1, name: '' };
  fails(() => fromJson(flow, { ...ok, sport: 70000 }), 'sport', /expected be16/);
  fails(() => fromJson(flow, { ...ok, tags: [1, -2] }), 'tags[1]', /expected u16/);
  fails(() => fromJson(flow, { ...ok, extra: 1 }), 'extra', /unknown field \(struct flow has saddr, sport/);
  const { proto: _p, ...noProto } = ok;
  fails(() => fromJson(flow, noProto), 'proto', /missing/);
  fails(() => fromJson(flow, { ...ok, big: 2 ** 64 }), 'big', /write it as a string/);
  fails(() => fromJson(flow, { ...ok, saddr: [1, 2, 3, 400] }), 'saddr[3]', /byte/);
  fails(() => parseLiteral(flow, '42'), '', /JSON object for struct flow \{saddr, sport, proto, tags, big, name\}/);
  fails(() => parseLiteral(flow, '{nope'), '', /in JSON/);
  const nested = struct('outer', { f: flow });
  fails(() => fromJson(nested, { f: { ...ok, proto: 'x' } }), 'f.proto', /expected an integer/);
});

test.run();
