import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hasNumbers, rateOf } from '../../src/maps/typed-map-rate.ts';
import { sumValues } from '../../src/maps/typed-map-sum.ts';
import { array, bytes, cstring, struct, u8, u32, u64 } from '../../src/schema/index.ts';

const stats = struct('stats', { msgs: u64, errs: u32, hist: array(u32, 2), name: cstring(8), id: bytes(2) });

test('per-CPU values sum field by field, without wrapping', () => {
  assert.is(sumValues(u32, [0xffffffff, 1]), 0x100000000);
  assert.is(sumValues(u64, [1n, 2n, 3n]), 6n);
  const a = { msgs: 1n, errs: 2, hist: [1, 2], name: '', id: new Uint8Array(2) };
  const b = { msgs: 10n, errs: 20, hist: [10, 20], name: 'cpu1', id: Uint8Array.from([1, 2]) };
  assert.equal(sumValues(stats, [a, b]), { msgs: 11n, errs: 22, hist: [11, 22], name: 'cpu1', id: Uint8Array.from([1, 2]) });
  assert.is(sumValues(u8, []), 0);
});

test('rates per second, numeric parts only', () => {
  assert.is(rateOf(u64, 10n, 40n, 2), 15);
  assert.is(rateOf(u32, 5, 5, 1), 0);
  const prev = { msgs: 0n, errs: 0, hist: [0, 0], name: 'x', id: new Uint8Array(2) };
  const cur = { msgs: 100n, errs: 1, hist: [4, 8], name: 'y', id: new Uint8Array(2) };
  assert.equal(rateOf(stats, prev, cur, 0.5), { msgs: 200, errs: 2, hist: [8, 16] });
  assert.is(rateOf(bytes(4), new Uint8Array(4), new Uint8Array(4), 1), undefined);
  assert.ok(hasNumbers(stats));
  assert.not.ok(hasNumbers(struct('s', { a: bytes(2), b: cstring(4) })));
});

test.run();
