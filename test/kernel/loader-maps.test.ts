import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BpfObject, LoaderError, listMaps, listPrograms } from '../../loader/index.ts';
import { fixtureObject, u32, u64 } from '../fixtures/fixture-path.ts';
import { leaksSince, snapshot } from '../helpers/leaks.ts';

// Taken when this file's tests start, not at import: uvu imports every file before running any.
let before = snapshot();
test.before(() => {
  before = snapshot();
});
const objPath = fixtureObject('maps');

test('specs are readable before load', () => {
  const obj = BpfObject.open(objPath);
  try {
    assert.equal(
      obj.programs.map((p) => [p.name, p.section, p.type]),
      [['count_packets', 'xdp', 'xdp']],
    );
    const byName = Object.fromEntries(obj.maps.map((m) => [m.name, m]));
    const { btf, ...counters } = byName.counters!;
    assert.equal(counters, { name: 'counters', type: 'array', keySize: 4, valueSize: 8, maxEntries: 16, flags: 0 });
    // The key and value types from the object's BTF, before anything reaches the kernel.
    assert.equal(
      [btf?.key?.kind, btf?.key?.size, btf?.value?.kind, btf?.value?.size],
      ['int', 4, 'int', 8],
    );
    assert.is(byName.flows?.type, 'hash');
    assert.is(byName.pcpu_counters?.type, 'percpu_array');
    assert.is(byName.pcpu_hash?.type, 'percpu_hash');
    obj.setMapMaxEntries('flows', 2048);
    assert.is(obj.maps.find((m) => m.name === 'flows')?.maxEntries, 2048);
    assert.throws(() => obj.program('count_packets'), (e: unknown) => e instanceof LoaderError && e.code === 'E_STATE');
  } finally {
    obj.close();
  }
});

test('array and hash: lookup, update flags, delete, nextKey', () => {
  const obj = BpfObject.open(objPath);
  try {
    obj.setMapMaxEntries('flows', 2048);
    obj.load();
    const counters = obj.map('counters');
    assert.is(counters.type, 'array');
    assert.is(counters.maxEntries, 16);
    assert.equal(counters.lookup(u32(3)), u64(0));
    counters.update(u32(3), u64(42));
    assert.equal(counters.lookup(u32(3)), u64(42));
    assert.is(counters.lookup(u32(99)), null, 'out-of-range array index reads as absent');

    const flows = obj.map('flows');
    assert.is(flows.maxEntries, 2048);
    assert.is(flows.lookup(u32(7)), null);
    const v = Buffer.alloc(16, 0xab);
    flows.update(u32(7), v, 'noexist');
    assert.equal(flows.lookup(u32(7)), v);
    assert.throws(() => flows.update(u32(7), v, 'noexist'), (e: unknown) => e instanceof LoaderError && e.code === 'E_EXIST');
    assert.throws(() => flows.update(u32(8), v, 'exist'), (e: unknown) => e instanceof LoaderError && e.code === 'E_NOENT');
    assert.throws(() => flows.update(u32(1), Buffer.alloc(3)), /value is 3 bytes, expected 16/);
    assert.throws(() => flows.lookup(Buffer.alloc(2)), /key is 2 bytes, expected 4/);
    for (let i = 100; i < 110; i++) flows.update(u32(i), v);
    const seen: number[] = [];
    for (let k = flows.nextKey(null); k; k = flows.nextKey(k)) seen.push(Buffer.from(k).readUInt32LE(0));
    assert.equal(seen.sort((a, b) => a - b), [7, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
    assert.ok(flows.delete(u32(7)));
    assert.not.ok(flows.delete(u32(7)));
  } finally {
    obj.close();
  }
});

test('per-CPU maps: one 8-byte-aligned slot per possible CPU', () => {
  const obj = BpfObject.open(objPath);
  try {
    obj.load();
    const pc = obj.map('pcpu_counters');
    assert.ok(pc.isPerCpu);
    assert.ok(pc.possibleCpus >= 1);
    assert.is(pc.valueBufSize, 8 * pc.possibleCpus);
    const ph = obj.map('pcpu_hash');
    assert.is(ph.valueSize, 4);
    assert.is(ph.valueBufSize, 8 * ph.possibleCpus, 'a 4-byte value takes an 8-byte slot per CPU');
    const val = Buffer.alloc(ph.valueBufSize);
    for (let cpu = 0; cpu < ph.possibleCpus; cpu++) val.writeUInt32LE(cpu + 10, cpu * 8);
    ph.update(u32(1), val);
    const back = Buffer.from(ph.lookup(u32(1))!);
    for (let cpu = 0; cpu < ph.possibleCpus; cpu++) assert.is(back.readUInt32LE(cpu * 8), cpu + 10);

    // The program's per-CPU increments sum to the number of runs.
    const run = obj.program('count_packets').testRun(Buffer.alloc(64), { repeat: 50 });
    assert.is(run.retval, 2, 'XDP_PASS');
    const slots = Buffer.from(pc.lookup(u32(0))!);
    let sum = 0n;
    for (let cpu = 0; cpu < pc.possibleCpus; cpu++) sum += slots.readBigUInt64LE(cpu * 8);
    assert.is(sum, 50n);
    assert.equal(obj.map('counters').lookup(u32(0)), u64(50));
  } finally {
    obj.close();
  }
});

test('batch update, lookup and delete', () => {
  const obj = BpfObject.open(objPath);
  try {
    obj.load();
    const flows = obj.map('flows');
    const keys = Array.from({ length: 500 }, (_, i) => u32(i * 3));
    const values = keys.map((_, i) => Buffer.alloc(16, i & 0xff));
    flows.updateBatch(keys, values);
    const dump = flows.lookupBatch({ chunk: 64 });
    assert.ok(dump, 'hash maps support batch lookup');
    assert.is(dump!.keys.length, 500);
    const got = new Map(dump!.keys.map((k, i) => [Buffer.from(k).readUInt32LE(0), Buffer.from(dump!.values[i]!)]));
    for (let i = 0; i < 500; i++) assert.equal(got.get(i * 3), values[i]);
    flows.deleteBatch(keys.slice(0, 200));
    assert.is(flows.lookupBatch()!.keys.length, 300);
    assert.is(flows.lookup(u32(0)), null);

    const pc = obj.map('pcpu_counters');
    const pdump = pc.lookupBatch()!;
    assert.is(pdump.keys.length, 4, 'arrays dump every index');
    assert.is(pdump.values[0]!.length, pc.valueBufSize);

    const sh = BpfMap.create({ type: 'sockhash', name: 'bt_sockhash', keySize: 4, valueSize: 4, maxEntries: 4 });
    try {
      assert.is(sh.lookupBatch(), null, 'sockhash has no batch lookup');
    } finally {
      sh.close();
    }
  } finally {
    obj.close();
  }
});

test('BpfMap.create, fromId, BTF of object maps', () => {
  const m = BpfMap.create({ type: 'hash', name: 'bt_created', keySize: 8, valueSize: 4, maxEntries: 10, flags: 1 /* BPF_F_NO_PREALLOC */ });
  try {
    assert.is(m.type, 'hash');
    assert.is(m.flags, 1);
    assert.is(m.btf, undefined, 'created without BTF');
    m.update(u64(1), u32(9));
    const again = BpfMap.fromId(m.id);
    try {
      assert.equal(again.lookup(u64(1)), u32(9));
    } finally {
      again.close();
    }
  } finally {
    m.close();
  }
  assert.throws(() => BpfMap.create({ type: 'no_such_type', name: 'x', keySize: 4, valueSize: 4, maxEntries: 1 }), /unknown map type/);

  const obj = BpfObject.open(objPath);
  try {
    obj.load();
    const btf = obj.map('flows').btf!;
    assert.equal(btf.key, { kind: 'int', name: 'unsigned int', size: 4, signed: false }, 'typedef u32_t resolved');
    assert.is(btf.value.kind, 'struct');
    if (btf.value.kind !== 'struct') return;
    assert.is(btf.value.name, 'flow_value');
    assert.is(btf.value.size, 16);
    assert.equal(
      btf.value.members.map((m) => [m.name, m.offsetBits, m.type.kind, m.type.size]),
      [
        ['packets', 0, 'int', 8],
        ['bytes', 64, 'int', 4],
        ['port', 96, 'int', 2], // const volatile looked through
        ['proto', 112, 'int', 1],
        ['pad', 120, 'array', 1],
      ],
    );
  } finally {
    obj.close();
  }
});

test('listPrograms / listMaps see the loaded objects', () => {
  const obj = BpfObject.open(objPath);
  try {
    obj.load();
    const prog = obj.program('count_packets');
    const progs = listPrograms();
    const p = progs.find((x) => x.id === prog.id);
    assert.ok(p, 'program listed by id');
    assert.is(p!.name, 'count_packets');
    assert.is(p!.type, 'xdp');
    assert.is(p!.tag, prog.tag);
    const maps = listMaps();
    // count_packets references counters and pcpu_counters (test/fixtures/maps.bpf.c); the kernel
    // lists a program's maps by what its instructions reference, so the other two are not in it.
    const used = new Set(['counters', 'pcpu_counters']);
    for (const name of ['counters', 'flows', 'pcpu_counters', 'pcpu_hash']) {
      const m = obj.map(name);
      const info = maps.find((x) => x.id === m.id);
      assert.ok(info, `map ${name} listed`);
      assert.is(info!.keySize, m.keySize);
      assert.is(info!.valueSize, m.valueSize);
      if (used.has(name)) assert.ok(p!.mapIds.includes(m.id), `${name} is among the program's maps (${p!.mapIds.join(', ')})`);
      else assert.not.ok(p!.mapIds.includes(m.id), `${name} is not referenced by count_packets, yet listed among its maps`);
    }
  } finally {
    obj.close();
  }
});

test('closing the object releases every program and map', () => {
  const obj = BpfObject.open(objPath);
  obj.load();
  const ids = { prog: obj.program('count_packets').id, map: obj.map('flows').id };
  obj.close();
  obj.close();
  assert.throws(() => obj.map('flows'), /closed/);
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline && listPrograms().some((p) => p.id === ids.prog)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  assert.not.ok(listPrograms().some((p) => p.id === ids.prog));
});

test('nothing leaked', async () => {
  assert.equal(await leaksSince(before), []);
});

test.run();
