/** The chain maps' byte layouts (shared by the supervisor, runtime and generated C). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CHAIN_LAYOUT_HASH,
  countersValue,
  DEAD_LETTER_KEY_BYTES,
  decodeConfig,
  decodeInstances,
  decodeRoute,
  dropOf,
  encodeConfig,
  encodeInstances,
  encodeRoute,
  instancesTable,
  readU32Key,
  regPortEntry,
  routeTable,
  sockKeyBytes,
  sumCount,
  sumCounters,
  u32Key,
} from '../../src/ir/chain-maps.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';

const ir = lowerPolicy({
  name: 'maps',
  functions: { a: { instances: 2, handler: './a.ts' }, b: { instances: 1, handler: './b.ts' } },
  routes: { '/ab': ['a', 'b'], '/b': ['b'] },
  pool: { bufferSize: 4096, bufferCount: 4 },
});

test('route values: struct bpfctl_route { __u32 len; __u16 fn[16]; }', () => {
  const v = encodeRoute([1, 2]);
  assert.is(v.length, 36);
  assert.equal([...v.subarray(0, 8)], [2, 0, 0, 0, 1, 0, 2, 0]);
  assert.equal(decodeRoute(v), [1, 2]);
  assert.equal(decodeRoute(encodeRoute([])), []);
  assert.throws(() => encodeRoute(Array(17).fill(1)), /at most 16/);
  assert.throws(() => encodeRoute([0]), /function id 1\.\.63/);
});

test('the routes table covers every id so stale routes are cleared', () => {
  const t = routeTable(ir);
  assert.is(t.length, 64);
  assert.equal(decodeRoute(t[0]!.value), [1, 2]);
  assert.equal(decodeRoute(t[1]!.value), [2]);
  assert.equal(decodeRoute(t[63]!.value), []);
  assert.is(readU32Key(t[5]!.key), 5);
});

test('instances values and the initial table', () => {
  const v = encodeInstances([3, 7]);
  assert.is(v.length, 68);
  assert.equal(decodeInstances(v), [3, 7]);
  assert.equal(
    instancesTable(ir).map((e) => [readU32Key(e.key), decodeInstances(e.value)]),
    [
      [0, [0]],
      [1, [0, 1]],
      [2, [0]],
    ],
  );
  assert.throws(() => encodeInstances(Array(33).fill(0)), /at most 32/);
});

test('config, sock keys, reg_ports', () => {
  const c = { poolSize: 64 + 4 * 4096, dataOff: 64, bufSize: 4096, bufCount: 4, hubPort: 40000 };
  const v = encodeConfig(c);
  assert.is(v.length, 24);
  assert.equal(decodeConfig(v), c);
  assert.equal([...sockKeyBytes(2, 5)], [5, 0, 2, 0]);
  assert.equal([...DEAD_LETTER_KEY_BYTES], [255, 255, 255, 255]);
  const r = regPortEntry(40001, 1, 3);
  assert.is(readU32Key(r.key), 40001);
  assert.is(readU32Key(r.value), (1 << 16) | 3);
  assert.throws(() => u32Key(-1), /u32/);
});

test('per-CPU counters are summed over CPUs', () => {
  const cpus = 3;
  const buf = new Uint8Array(countersValue.size * cpus);
  const dv = new DataView(buf.buffer);
  for (let i = 0; i < cpus; i++) {
    dv.setBigUint64(i * 24, BigInt(i + 1), true);
    dv.setBigUint64(i * 24 + 8, 100n, true);
    dv.setBigUint64(i * 24 + 16, 1n, true);
  }
  assert.equal(sumCounters(buf, cpus), { msgs: 6n, bytes: 300n, drops: 3n });
  const n = new Uint8Array(8 * 2);
  new DataView(n.buffer).setBigUint64(8, 5n, true);
  assert.is(sumCount(n, 2), 5n);
});

test('drop marks in descriptor flags', () => {
  assert.equal(dropOf(0x01), { dropped: false });
  assert.equal(dropOf(0x80 | (1 << 4)), { dropped: true, reason: 'unknown_route' });
  assert.equal(dropOf(0x80 | (5 << 4) | 1), { dropped: true, reason: 'dead_socket' });
  assert.match(CHAIN_LAYOUT_HASH, /^[0-9a-f]{64}$/);
});

test.run();
