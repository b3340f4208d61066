/**
 * `bpfctl map watch` on maps that stream records: a libbpf-bootstrap ring buffer (hex records,
 * and a one-line error naming the BTF idiom when the record type is not in BTF) and a bcc-style
 * perf event array (records decoded by --type from the BTF, with the CPU that wrote them), both
 * fed by tracepoints attached with `bpfctl prog attach`.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { objectFile, objectsDir, syscalls } from '../objects/build.ts';
import { runCli as run } from '../helpers/cli.ts';

const root = `/sys/fs/bpf/bpfctl-test-${process.pid}`;
let before: Snapshot;

async function ok(...args: string[]): Promise<string> {
  const r = await run(...args);
  assert.is(r.code, 0, `bpfctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test.before(async () => {
  await new Promise((r) => setTimeout(r, 500)); // let tsx settle its cache fds (see objects-maps)
  before = snapshot();
});

test('ring buffer: records streamed as hex; --type of a type not in BTF says how to put it there', async () => {
  const dir = join(root, 'rb');
  await ok('load', objectFile('bootstrap_exec'), '--pin', dir, '--set', `target_pid=${process.pid}`, '--set', 'max_events=3', '--quiet');
  await ok('prog', 'attach', join(dir, 'progs/handle_getppid'));
  for (let i = 0; i < 5; i++) syscalls.getppid();
  const lines = (await ok('map', 'watch', join(dir, 'maps/rb'), '--count', '3', '--timeout', '5', '--json')).trim().split('\n');
  assert.is(lines.length, 3);
  const records = lines.map((l) => JSON.parse(l) as { size: number; record: string });
  for (const [i, r] of records.entries()) {
    assert.is(r.size, 24);
    const b = Buffer.from(r.record, 'hex');
    assert.is(b.readUInt32LE(0), process.pid, 'struct event.pid');
    assert.is(b.readUInt32LE(4), i + 1, 'struct event.seq');
  }
  const none = await run('map', 'watch', join(dir, 'maps/rb'), '--type', 'event', '--count', '1', '--timeout', '1');
  assert.is(none.code, 1);
  assert.match(none.stderr, /^bpfctl: --type event: no struct, union or typedef 'event' in the BTF of map 'rb' or its programs \(a type only used inside a function is not in BTF: declare e\.g\. `struct event \*unused __attribute__\(\(unused\)\);`\)\n$/);
  // Nothing more arrives: a bounded watch ends at its timeout with no records.
  assert.is((await ok('map', 'watch', join(dir, 'maps/rb'), '--timeout', '0.3', '--json')).trim(), '');
  await ok('unload', dir);
});

test('perf event array: records decoded by --type from the BTF, with their CPU', async () => {
  const dir = join(root, 'perf');
  await ok('load', objectFile('perf_output'), '--pin', dir, '--set', `only_pid=${process.pid}`, '--quiet');
  await ok('prog', 'attach', join(dir, 'progs/on_getsid'));
  // The perf buffer only holds what arrives while it is open: read in the background, then call.
  const watching = run('map', 'watch', join(dir, 'maps/events'), '--type', 'sid_event', '--count', '4', '--timeout', '10', '--json', '--interval', '0.02');
  await new Promise((r) => setTimeout(r, 300));
  for (let i = 0; i < 4; i++) syscalls.getsid(0);
  const r = await watching;
  assert.is(r.code, 0, r.stderr);
  const records = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { cpu: number; record: { pid: number; cpu: number; ts: number } });
  assert.is(records.length, 4);
  for (const x of records) {
    assert.is(x.record.pid, process.pid);
    assert.is(x.record.cpu, x.cpu, 'the record says the CPU perf_buffer saw it on');
    assert.ok(x.record.ts > 0);
  }
  await ok('unload', dir);
});

test('nothing leaks', async () => {
  rmSync(objectsDir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [root] }), []);
  removeOwnDirs([root]);
});

test.run();
