/** The chain maps' byte layouts (shared by the supervisor, runtime and generated C). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CHAIN_LAYOUT_HASH,
  CHAIN_MAP_NAMES,
  countersValue,
  DEAD_LETTER_KEY_BYTES,
  decodeConfig,
  decodeInstances,
  decodeRoute,
  decodeRouteSlot,
  dropOf,
  encodeConfig,
  encodeInstances,
  encodeRoute,
  encodeRouteSlot,
  FREE_SLOT,
  INITIAL_ROUTES_GEN,
  instancesTable,
  isCurrent,
  MAX_ROUTE_SLOTS,
  methodBits,
  methodsOf,
  readU32Key,
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

test('route values: struct bpfctl_route { __u32 len; __u16 fn[16]; version; retired; retired_at_ms; methods; name_len; name[64] }', () => {
  // The kernel reads len and fn, which keep their offsets: len at 0, fn[16] at 4.
  const v = encodeRoute([1, 2]);
  assert.is(v.length, 128);
  assert.equal([...v.subarray(0, 8)], [2, 0, 0, 0, 1, 0, 2, 0]);
  assert.equal(decodeRoute(v), [1, 2]);
  assert.equal(decodeRoute(encodeRoute([])), []);
  assert.throws(() => encodeRoute(Array(17).fill(1)), /at most 16/);
  assert.throws(() => encodeRoute([0]), /function id 1\.\.63/);
  // encodeRoute: a slot live from generation 1, POST by default, with its name.
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  assert.is(dv.getUint32(36, true), INITIAL_ROUTES_GEN, 'version');
  assert.is(dv.getUint32(40, true), 0, 'retired');
  assert.is(dv.getBigUint64(48, true), 0n, 'retired_at_ms');
  assert.is(dv.getUint32(56, true), methodBits(['POST']), 'methods');
  assert.equal(decodeRouteSlot(encodeRoute([3], '/x', ['GET', 'HEAD'])), { hops: [3], version: 1, retired: 0, retiredAtMs: 0, methods: ['GET', 'HEAD'], name: '/x' });
  // An empty route is a free slot (version 0).
  assert.equal([...encodeRoute([])], [...FREE_SLOT]);
  assert.is(decodeRouteSlot(FREE_SLOT).version, 0);
});

test('route slots round-trip every field; names are bounded; methods are bits', () => {
  const s = { hops: [4, 1, 4], version: 7, retired: 9, retiredAtMs: 1_764_000_000_123, methods: methodsOf(methodBits(['PUT', 'GET'])), name: '/orders/new' };
  assert.equal(s.methods, ['GET', 'PUT'], 'methods come back in ROUTE_METHODS order');
  const v = encodeRouteSlot(s);
  assert.equal(decodeRouteSlot(v), s);
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  assert.is(dv.getUint32(60, true), 11, 'name_len');
  assert.is(new TextDecoder().decode(v.subarray(64, 75)), '/orders/new');
  assert.not.throws(() => encodeRouteSlot({ ...s, name: 'n'.repeat(64) }));
  assert.throws(() => encodeRouteSlot({ ...s, name: 'n'.repeat(65) }), /longer than 64 bytes/);
  assert.throws(() => methodBits(['BREW']), /unknown HTTP method BREW/);
  assert.throws(() => encodeRouteSlot({ ...s, hops: [64] }), /function id 1\.\.63/);
});

test('a slot is current from its version until it is retired', () => {
  const s = { version: 3, retired: 0 };
  assert.not.ok(isCurrent(s, 2), 'not yet published');
  assert.ok(isCurrent(s, 3));
  assert.ok(isCurrent(s, 100));
  const r = { version: 3, retired: 5 };
  assert.ok(isCurrent(r, 4));
  assert.not.ok(isCurrent(r, 5), 'retired at 5');
  assert.not.ok(isCurrent({ version: 0, retired: 0 }, 1), 'free');
});

test('the routes table covers every slot so stale routes are cleared', () => {
  const t = routeTable(ir);
  assert.is(t.length, MAX_ROUTE_SLOTS);
  assert.is(MAX_ROUTE_SLOTS, 1024);
  assert.equal(decodeRoute(t[0]!.value), [1, 2]);
  assert.equal(decodeRoute(t[1]!.value), [2]);
  assert.equal(decodeRoute(t[63]!.value), []);
  assert.equal(decodeRoute(t[MAX_ROUTE_SLOTS - 1]!.value), []);
  assert.is(readU32Key(t[5]!.key), 5);
  assert.is(readU32Key(t[MAX_ROUTE_SLOTS - 1]!.key), MAX_ROUTE_SLOTS - 1);
  // Route i in slot i, live at the initial generation, with its name and methods.
  assert.equal(decodeRouteSlot(t[0]!.value), { hops: [1, 2], version: INITIAL_ROUTES_GEN, retired: 0, retiredAtMs: 0, methods: ['POST'], name: '/ab' });
  assert.equal(decodeRouteSlot(t[1]!.value).name, '/b');
  for (const e of t.slice(2)) assert.equal([...e.value], [...FREE_SLOT]);
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

test('config (routes_gen where pad was) and sock keys', () => {
  const c = { poolSize: 64 + 4 * 4096, dataOff: 64, bufSize: 4096, bufCount: 4, hubPort: 40000, routesGen: 7 };
  const v = encodeConfig(c);
  assert.is(v.length, 24);
  assert.equal(decodeConfig(v), c);
  assert.is(new DataView(v.buffer, v.byteOffset).getUint32(20, true), 7, 'routes_gen is the last u32');
  assert.equal([...sockKeyBytes(2, 5)], [5, 0, 2, 0]);
  assert.equal([...DEAD_LETTER_KEY_BYTES], [255, 255, 255, 255]);
  assert.throws(() => u32Key(-1), /u32/);
  // Registration is the supervisor's: no reg_ports map any more.
  assert.equal([...CHAIN_MAP_NAMES], ['routes', 'instances', 'socks', 'config', 'fn_stats', 'route_stats', 'drop_reasons', 'gw_stats']);
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
