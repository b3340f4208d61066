import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
  // A bad value on CPU 1 is named by its CPU: needs a second CPU, which this machine must have.
  assert.ok(cpus > 1, `only ${cpus} possible CPU: per-CPU values cannot be told apart here`);
  try {
    pcpu.setPerCpu(1, Array.from({ length: cpus }, (_, i) => ({ msgs: i === 1 ? -1n : 0n, bytes: 0n, drops: 0n })));
    assert.unreachable();
  } catch (err) {
    assert.instance(err, SchemaError);
    assert.is((err as SchemaError).path, 'value[1].msgs');
  }
});

/** The CPU this thread last ran on (field 39 of /proc/thread-self/stat). */
const currentCpu = () => Number(readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]!.split(' ')[36]);

/** Run `fn` with this (the main) thread pinned to `cpu`: a test run executes on the caller's CPU. */
function onCpu<T>(cpu: number, fn: () => T): T {
  const all = execFileSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' }).trim().split(' ').pop()!;
  execFileSync('taskset', ['-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
  try {
    assert.is(currentCpu(), cpu, `pinned to CPU ${cpu}`);
    return fn();
  } finally {
    execFileSync('taskset', ['-p', all, String(process.pid)], { stdio: 'ignore' });
  }
}

test('counts written by a BPF program add up across CPUs', () => {
  const pcpu = new TypedMap(obj.map('pcpu'), u32, counters);
  const small = new TypedMap(obj.map('pcpu_small'), u32, u32);
  const cpus = obj.map('pcpu').possibleCpus;
  assert.ok(cpus > 1, `only ${cpus} possible CPU: nothing to add up across`);
  pcpu.set(0, { msgs: 0n, bytes: 0n, drops: 0n });
  // 25 packets on CPU 0, 15 on CPU 1: each CPU's slot counts its own, the sum counts all.
  const run = onCpu(0, () => obj.program('count_packets').testRun(packet, { repeat: 25 }));
  assert.is(run.retval, 2);
  assert.is(onCpu(1, () => obj.program('count_packets').testRun(packet, { repeat: 15 })).retval, 2);
  assert.equal(pcpu.getPerCpu(0)!.slice(0, 2), [
    { msgs: 25n, bytes: 25n * 64n, drops: 0n },
    { msgs: 15n, bytes: 15n * 64n, drops: 0n },
  ]);
  assert.equal(pcpu.getSum(0), { msgs: 40n, bytes: 40n * 64n, drops: 0n });
  // 4-byte per-CPU values sit in 8-byte slots.
  // On each CPU the first packet inserts 1 (or adds to what is there), the others add to it.
  assert.equal(small.getPerCpu(1)!.slice(0, 2), [25, 15]);
  assert.is(small.getSum(1), 40);
  assert.equal([...small.entries()], [[1, 40]]);
  assert.equal(
    [...small.entriesPerCpu()].map(([k, v]) => [k, v.length]),
    [[1, obj.map('pcpu_small').possibleCpus]],
  );
});

test('nothing leaks', async () => {
  obj.close();
  fixture.remove();
  assert.equal(await leaksSince(before), []);
});

test.run();
