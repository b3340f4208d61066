import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BpfObject, BpfProgram, ensureBpffs, isBpffs, LoaderError, listMaps, mkdirp, unpin, unpinAll } from '../../loader/index.ts';
import { fixtureObject, u32, u64 } from '../fixtures/fixture-path.ts';
import { leaksSince, snapshot } from '../helpers/leaks.ts';

const dir = `/sys/fs/bpf/bpfctl-test-${process.pid}/pins`;
const child = fileURLToPath(new URL('../fixtures/pin-child.ts', import.meta.url));
// Taken when this file's tests start, not at import: uvu imports every file before running any.
let before = snapshot();
test.before(() => {
  before = snapshot();
});

function runChild(mode: 'create' | 'read'): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', child, mode, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out) as Record<string, unknown>;
}

test('bpffs is mounted and recognised', () => {
  ensureBpffs();
  assert.ok(isBpffs('/sys/fs/bpf'));
  assert.not.ok(isBpffs('/tmp'));
  assert.throws(() => mkdirp('/tmp/bpfctl-not-bpffs'), (e: unknown) => e instanceof LoaderError && e.code === 'E_BPFFS');
});

test('pins outlive the process that loaded them and are reopened by another', () => {
  const created = runChild('create');
  assert.ok(existsSync(`${dir}/maps/counters`));
  assert.ok(
    listMaps().some((m) => m.id === created.mapId),
    'the map is still loaded after its creator exited',
  );
  const read = runChild('read');
  assert.is(read.mapId, created.mapId);
  assert.is(read.progId, created.progId);
  assert.is(read.progType, 'xdp');
  assert.is(read.value, '1234');
  // The second process's write is visible here.
  const map = BpfMap.openPinned(`${dir}/maps/counters`);
  try {
    assert.equal(map.lookup(u32(1)), u64(1235));
  } finally {
    map.close();
  }
});

test('reuseMap shares a pinned map with a new object', () => {
  const pinned = BpfMap.openPinned(`${dir}/maps/counters`);
  const obj = BpfObject.open(fixtureObject('maps'));
  try {
    obj.reuseMap('counters', pinned);
    obj.load();
    assert.is(obj.map('counters').id, pinned.id);
    obj.program('count_packets').testRun(Buffer.alloc(64), { repeat: 3 });
    assert.equal(pinned.lookup(u32(0)), u64(3));
    const wrong = BpfObject.open(fixtureObject('maps'));
    try {
      assert.throws(() => wrong.reuseMap('flows', pinned), /cannot reuse map 'counters' as 'flows': type array != hash/);
    } finally {
      wrong.close();
    }
  } finally {
    obj.close();
    pinned.close();
  }
});

test('opening pins: wrong kind and missing pins are clear errors', () => {
  assert.throws(() => BpfMap.openPinned(`${dir}/progs/count_packets`), /holds a prog, not a map/);
  assert.throws(() => BpfProgram.openPinned(`${dir}/progs/nope`), (e: unknown) => e instanceof LoaderError && e.code === 'E_NOENT' && /nothing is pinned/.test(e.message));
  const m = BpfMap.openPinned(`${dir}/maps/counters`);
  try {
    assert.throws(() => m.pin(`${dir}/maps/counters`), (e: unknown) => e instanceof LoaderError && /already exists/.test(e.message));
  } finally {
    m.close();
  }
});

test('unpin removes pins; the objects go with the last reference', () => {
  assert.ok(unpin(`${dir}/maps/counters`));
  assert.not.ok(unpin(`${dir}/maps/counters`));
  unpinAll(`/sys/fs/bpf/bpfctl-test-${process.pid}`);
  assert.not.ok(existsSync(dir));
});

test('nothing leaked', async () => {
  assert.equal(await leaksSince(before, { ownDirs: [`/sys/fs/bpf/bpfctl-test-${process.pid}`] }), []);
});

test.run();
