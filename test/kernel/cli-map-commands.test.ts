import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BpfProgram } from '../../loader/index.ts';
import { loadObjectCommand, unloadDirCommand } from '../../src/cli/commands/object.ts';
import { createOutput } from '../../src/cli/output.ts';
import { type BuiltFixture, buildTypedFixture } from '../fixtures/typed/build.ts';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { cliJson as json, runCli as run } from '../helpers/cli.ts';

const root = `/sys/fs/bpf/bpfctl-test-${process.pid}`;
const dir = join(root, 'cli-map');
let before: Snapshot;
let fixture: BuiltFixture;

const quiet = () => createOutput({ json: true, quiet: true, stdout: { write: () => true }, stderr: { write: () => true } });

test.before(async () => {
  before = snapshot();
  fixture = buildTypedFixture();
  await loadObjectCommand(fixture.object, dir, quiet());
});

test('load pinned every program and map', async () => {
  for (const p of ['progs/count_packets', 'progs/pass_all', 'maps/arr', 'maps/flows', 'maps/pcpu', 'maps/pcpu_small', 'maps/structs'])
    assert.ok(existsSync(join(dir, p)), p);
});

test('map set/get/del with a JSON struct value', async () => {
  const value = {
    a: 1, b: -1, c: 2, d: -2, e: 3, f: -3, g: '18446744073709551615', h: -4, i: 80, j: 5, k: 6,
    mac: 'aa:bb:cc:dd:ee:ff', name: 'hello', arr: [1, 2, 3, 4], in: { x: 1, y: 2 }, ins: [{ x: 3, y: 4 }, { x: 5, y: 6 }],
  };
  const set = await run('map', 'set', join(dir, 'maps/structs'), '7', JSON.stringify(value));
  assert.is(set.code, 0, set.stderr);
  const got = await json<{ key: number; value: Record<string, unknown> }>('map', 'get', join(dir, 'maps/structs'), '0x7');
  assert.is(got.key, 7);
  assert.equal(got.value, { ...value, g: '18446744073709551615', mac: 'aabbccddeeff' });
  const human = await run('map', 'get', join(dir, 'maps/structs'), '7');
  assert.match(human.stdout, /"name":"hello"/);
  const del = await run('map', 'del', join(dir, 'maps/structs'), '7');
  assert.is(del.code, 0, del.stderr);
  const again = await run('map', 'del', join(dir, 'maps/structs'), '7');
  assert.is(again.code, 1);
  assert.match(again.stderr, /bpfctl: map 'structs' has no entry for key 7/);
  const missing = await run('map', 'get', join(dir, 'maps/structs'), '7');
  assert.is(missing.code, 1);
});

test('bad KEY/VALUE is a schema error naming the field, before any write', async () => {
  const r = await run('map', 'set', join(dir, 'maps/flows'), '{"addr":1,"port":70000,"proto":6,"pad":0}', '1');
  assert.is(r.code, 1);
  // BTF keeps the __be16 typedef name, so the field is parsed as network order.
  assert.match(r.stderr, /bpfctl: key\.port: expected be16 \(0\.\.65535\), got 70000/);
  const v = await run('map', 'set', join(dir, 'maps/arr'), '1', 'abc');
  assert.match(v.stderr, /value: expected an integer for u64/);
  const j = await run('map', 'set', join(dir, 'maps/arr'), '1', '-1', '--json');
  assert.is(JSON.parse(j.stderr).code, 'E_SCHEMA');
  assert.is(JSON.parse(j.stderr).path, 'value');
  assert.equal(await json('map', 'dump', join(dir, 'maps/flows')), []);
});

test('map dump: BTF-decoded, by pin or id, --json array of {key, value}', async () => {
  assert.is((await run('map', 'set', join(dir, 'maps/arr'), '3', '42')).code, 0);
  const rows = await json<{ key: number; value: number }[]>('map', 'dump', join(dir, 'maps/arr'));
  assert.is(rows.length, 16);
  assert.equal(rows[3], { key: 3, value: 42 });
  const id = BpfMap.openPinned(join(dir, 'maps/arr'));
  try {
    assert.equal(await json('map', 'dump', String(id.id)), rows);
  } finally {
    id.close();
  }
  assert.is((await run('map', 'set', join(dir, 'maps/flows'), '{"addr":"0x0a000001","port":443,"proto":6,"pad":0}', '9')).code, 0);
  const human = await run('map', 'dump', join(dir, 'maps/flows'));
  assert.match(human.stdout, /flows \(hash, id \d+\): 1 entry/);
  assert.match(human.stdout, /"port":443/);
  const raw = await json<{ key: string; value: string }[]>('map', 'dump', join(dir, 'maps/flows'), '--raw');
  // addr and port are __be32/__be16 in C and in BTF: stored in network order.
  assert.equal(raw, [{ key: '0a00000101bb0600', value: '0900000000000000' }]);
});

test('a map without BTF is shown and edited in hex (or integers)', async () => {
  const m = BpfMap.create({ type: 'hash', name: 'cli_nobtf', keySize: 4, valueSize: 8, maxEntries: 8 });
  const pin = join(dir, 'nobtf');
  m.pin(pin);
  m.close();
  try {
    assert.is((await run('map', 'set', pin, '258', '0x0102030405060708')).code, 0);
    assert.equal(await json('map', 'dump', pin), [{ key: '02010000', value: '0102030405060708' }]);
    assert.equal(await json('map', 'get', pin, '02:01:00:00'), { key: '02010000', value: '0102030405060708' });
    const bad = await run('map', 'get', pin, '0x0102');
    assert.match(bad.stderr, /key: expected 4 bytes as hex/);
  } finally {
    rmSync(pin);
  }
});

test('per-CPU maps: get and dump show sums, --per-cpu every CPU', async () => {
  const prog = BpfProgram.openPinned(join(dir, 'progs/count_packets'));
  try {
    prog.testRun(new Uint8Array(64), { repeat: 10 });
  } finally {
    prog.close();
  }
  const sum = await json<{ key: number; value: { msgs: number; bytes: number } }>('map', 'get', join(dir, 'maps/pcpu'), '0');
  assert.equal(sum.value, { msgs: 10, bytes: 640, drops: 0 });
  const per = await json<{ value: unknown[] }>('map', 'get', join(dir, 'maps/pcpu'), '0', '--per-cpu');
  const pcpu = BpfMap.openPinned(join(dir, 'maps/pcpu'));
  assert.is(per.value.length, pcpu.possibleCpus);
  pcpu.close();
  const small = await json<{ key: number; value: number }[]>('map', 'dump', join(dir, 'maps/pcpu_small'));
  assert.equal(small, [{ key: 1, value: 10 }]);
});

test('map watch --count 2 prints two refreshes with per-second deltas', async () => {
  const prog = BpfProgram.openPinned(join(dir, 'progs/count_packets'));
  try {
    // Runs during the watch's sleep between its two refreshes.
    const timer = setTimeout(() => prog.testRun(new Uint8Array(64), { repeat: 50 }), 100);
    const r = await run('map', 'watch', join(dir, 'maps/pcpu'), '--count', '2', '--interval', '0.4', '--json');
    clearTimeout(timer);
    assert.is(r.code, 0, r.stderr);
    const frames = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.is(frames.length, 2);
    assert.is(frames[0].entries[0].perSecond, null);
    const rate = frames[1].entries[0].perSecond;
    assert.ok(rate.msgs > 50 && rate.msgs < 50 / 0.3, `rate ${JSON.stringify(rate)}`);
    assert.is(rate.drops, 0);
    const human = await run('map', 'watch', join(dir, 'maps/arr'), '-n', '2', '-i', '0.05');
    assert.is(human.stdout.match(/arr \(array, id \d+\) at /g)?.length, 2);
    assert.match(human.stdout, /perSecond/);
  } finally {
    prog.close();
  }
});

test('prog ls and map ls list what is loaded', async () => {
  const progs = await json<{ id: number; name: string; type: string }[]>('prog', 'ls');
  const p = BpfProgram.openPinned(join(dir, 'progs/count_packets'));
  try {
    const mine = progs.find((x) => x.id === p.id);
    assert.ok(mine, 'count_packets listed');
    assert.is(mine!.type, 'xdp');
    assert.is(mine!.name, 'count_packets');
  } finally {
    p.close();
  }
  const maps = await json<{ name: string; type: string; key: number; value: number }[]>('map', 'ls');
  const pcpu = maps.find((m) => m.name === 'pcpu' && m.type === 'percpu_array');
  assert.ok(pcpu);
  assert.is(pcpu!.value, 24);
  const human = await run('prog', 'ls');
  assert.match(human.stdout, /count_packets/);
});

test('a load that fails part-way leaves nothing pinned', async () => {
  const bad = join(root, 'cli-bad');
  // A pin where the maps/ directory should go: programs pin fine, then the first map fails.
  const blocker = BpfMap.create({ type: 'array', name: 'blocker', keySize: 4, valueSize: 4, maxEntries: 1 });
  blocker.pin(join(bad, 'maps'));
  blocker.close();
  try {
    await loadObjectCommand(fixture.object, bad, quiet());
    assert.unreachable('load should fail');
  } catch (err) {
    assert.not.instance(err, assert.Assertion);
  }
  assert.not.ok(existsSync(join(bad, 'progs')), 'progs/ removed');
  rmSync(join(bad, 'maps'));
  rmSync(bad, { recursive: true });
  // Loading again into a directory that already holds these pins is refused before the kernel.
  const again = await loadObjectCommand(fixture.object, dir, quiet()).catch((e: Error) => e);
  assert.match(String(again), /already pinned \(bpfctl unload/);
});

test('unload removes everything load pinned', async () => {
  const res = await unloadDirCommand(dir, quiet());
  assert.is(res.removed.length, 7);
  assert.not.ok(existsSync(dir));
  // The parent the load created (the test root) went too, once empty.
  assert.not.ok(existsSync(root), 'empty parent removed');
  mkdirSync(root, { recursive: true });
  const none = await unloadDirCommand(root, quiet()).catch((e: Error) => e);
  assert.match(String(none), /holds no progs\/ or maps\//, String(none));
});

test('bpfctl load FILE.bpf.o --pin DIR / unload DIR reach these functions', async () => {
  const other = join(root, 'cli-main');
  const load = await run('load', fixture.object, '--pin', other, '--json', '--quiet');
  assert.is(load.code, 0, load.stderr);
  const res = JSON.parse(load.stdout) as { dir: string; pins: { kind: string; name: string }[] };
  assert.is(res.dir, other);
  assert.is(res.pins.filter((p) => p.kind === 'prog').length, 2);
  const unload = await run('unload', other);
  assert.is(unload.code, 0, unload.stderr);
  assert.match(unload.stdout, /7 pins removed/);
  assert.not.ok(existsSync(other));
});

test('nothing leaks', async () => {
  fixture.remove();
  assert.equal(await leaksSince(before, { ownDirs: [root] }), []);
  removeOwnDirs([root]);
});

test.run();
