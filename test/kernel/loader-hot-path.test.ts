/**
 * BpfMap.hot() and lookupInto(): the allocation-free map path. Same answers as lookup/update
 * (present, absent, flags, per-CPU buffers), errors as LoaderErrors, and no garbage: a long loop
 * of hot lookups and updates triggers no garbage collection at all.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, LoaderError } from '../../loader/index.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';

let before: Snapshot;
test.before(async () => {
  await new Promise((r) => setTimeout(r, 500)); // let tsx settle its cache fds (see objects-maps)
  before = snapshot();
});

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);

test('hot lookup/update/delete agree with the plain calls', () => {
  const m = BpfMap.create({ type: 'hash', name: 'hot_hash', keySize: 4, valueSize: 8, maxEntries: 16 });
  try {
    const h = m.hot();
    const key = new DataView(h.key.buffer, h.key.byteOffset, 4);
    const value = new DataView(h.value.buffer, h.value.byteOffset, 8);
    key.setUint32(0, 7, true);
    assert.is(h.lookup(), false, 'absent');
    value.setBigUint64(0, 42n, true);
    h.update('noexist');
    assert.equal([...m.lookup(u32(7))!], [42, 0, 0, 0, 0, 0, 0, 0]);
    assert.throws(() => h.update('noexist'), (e: unknown) => e instanceof LoaderError && e.code === 'E_EXIST' && /update map 'hot_hash': EEXIST/.test(e.message));
    m.update(u32(7), new Uint8Array([9, 0, 0, 0, 0, 0, 0, 0]));
    value.setBigUint64(0, 0n, true);
    assert.is(h.lookup(), true);
    assert.is(value.getBigUint64(0, true), 9n);
    const out = new Uint8Array(8);
    assert.is(m.lookupInto(u32(7), out), true);
    assert.is(out[0], 9);
    assert.is(m.lookupInto(u32(8), out), false);
    assert.throws(() => m.lookupInto(u32(7), new Uint8Array(4)), /value buffer is 4 bytes, expected 8/);
    assert.is(h.delete(), true);
    assert.is(h.delete(), false);
    key.setUint32(0, 99, true);
    assert.throws(() => h.update('exist'), (e: unknown) => e instanceof LoaderError && e.code === 'E_NOENT');
  } finally {
    m.close();
  }
});

test('per-CPU maps: the hot value buffer holds every CPU', () => {
  const m = BpfMap.create({ type: 'percpu_array', name: 'hot_pcpu', keySize: 4, valueSize: 4, maxEntries: 2 });
  try {
    const h = m.hot();
    assert.is(h.value.length, 8 * m.possibleCpus);
    h.key.set(u32(1));
    for (let cpu = 0; cpu < m.possibleCpus; cpu++) h.value[cpu * 8] = cpu + 1;
    h.update();
    h.value.fill(0);
    assert.is(h.lookup(), true);
    for (let cpu = 0; cpu < m.possibleCpus; cpu++) assert.is(h.value[cpu * 8], cpu + 1);
  } finally {
    m.close();
  }
});

test('200k hot lookups and updates allocate nothing (no GC at all)', async () => {
  const m = BpfMap.create({ type: 'hash', name: 'hot_gc', keySize: 4, valueSize: 8, maxEntries: 1024 });
  let gcs = 0;
  const obs = new PerformanceObserver((l) => {
    gcs += l.getEntries().length;
  });
  try {
    const h = m.hot();
    const key = new DataView(h.key.buffer, h.key.byteOffset, 4);
    for (let i = 0; i < 1024; i++) {
      key.setUint32(0, i, true);
      h.update();
    }
    // Warm up (JIT, koffi's call stubs), then count collections over the timed loop.
    for (let i = 0; i < 10_000; i++) h.lookup();
    await new Promise((r) => setTimeout(r, 50));
    obs.observe({ entryTypes: ['gc'] });
    for (let i = 0; i < 100_000; i++) {
      key.setUint32(0, i & 1023, true);
      h.lookup();
      h.update();
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.is(gcs, 0, `${gcs} garbage collections during the hot loop`);
  } finally {
    obs.disconnect();
    m.close();
  }
});

test('nothing leaks', async () => {
  assert.equal(await leaksSince(before), []);
});

test.run();
