import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfObject } from '../../loader/index.ts';
import { TypedMap } from '../../src/maps/typed-map.ts';
import { SchemaError, u32 } from '../../src/schema/index.ts';
import { type BuiltFixture, buildTypedFixture } from '../fixtures/typed/build.ts';
import { counters } from '../fixtures/typed/schemas.ts';
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
const packet = new Uint8Array(64);

test('per-CPU struct values: written per CPU, summed field-wise', () => {
  const pcpu = new TypedMap(obj.map('pcpu'), u32, counters);
  const cpus = obj.map('pcpu').possibleCpus;
  pcpu.setPerCpu(1, Array.from({ length: cpus }, (_, i) => ({ msgs: BigInt(i + 1), bytes: 10n, drops: 0n })));
  const per = pcpu.getPerCpu(1)!;
  assert.is(per.length, cpus);
  assert.equal(per[0], { msgs: 1n, bytes: 10n, drops: 0n });
  assert.equal(pcpu.getSum(1), { msgs: BigInt((cpus * (cpus + 1)) / 2), bytes: BigInt(10 * cpus), drops: 0n });
  // set writes the same value on every CPU (resetting counters).
  pcpu.set(1, { msgs: 0n, bytes: 0n, drops: 1n });
  assert.equal(pcpu.getSum(1), { msgs: 0n, bytes: 0n, drops: BigInt(cpus) });
  try {
    pcpu.get(1);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, SchemaError);
    assert.match((err as Error).message, /one value per CPU/);
  }
  try {
    pcpu.setPerCpu(1, [{ msgs: 0n, bytes: 0n, drops: 0n }, { msgs: -1n, bytes: 0n, drops: 0n }].slice(0, cpus === 1 ? 1 : 2).concat(Array(Math.max(0, cpus - 2)).fill({ msgs: 0n, bytes: 0n, drops: 0n })));
    if (cpus > 1) assert.unreachable();
  } catch (err) {
    assert.instance(err, SchemaError);
    assert.is((err as SchemaError).path, 'value[1].msgs');
  }
});

test('counts written by a BPF program add up across CPUs', () => {
  const pcpu = new TypedMap(obj.map('pcpu'), u32, counters);
  const small = new TypedMap(obj.map('pcpu_small'), u32, u32);
  pcpu.set(0, { msgs: 0n, bytes: 0n, drops: 0n });
  const run = obj.program('count_packets').testRun(packet, { repeat: 25 });
  assert.is(run.retval, 2);
  assert.equal(pcpu.getSum(0), { msgs: 25n, bytes: 25n * 64n, drops: 0n });
  // 4-byte per-CPU values sit in 8-byte slots.
  // The first packet inserts 1, the other 24 add to it.
  assert.is(small.getSum(1), 25);
  assert.is(small.getPerCpu(1)!.reduce((a, b) => a + b, 0), 25);
  assert.equal([...small.entries()], [[1, 25]]);
  assert.equal(
    [...small.entriesPerCpu()].map(([k, v]) => [k, v.length]),
    [[1, obj.map('pcpu_small').possibleCpus]],
  );
});

test('nothing leaks', () => {
  obj.close();
  fixture.remove();
  assert.equal(leaksSince(before), []);
});

test.run();
