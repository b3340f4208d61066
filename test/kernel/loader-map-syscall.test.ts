/**
 * loader/map-syscall.ts: the zero-argument calls of loader/native/map-syscalls.c and the libc syscall() fallback make
 * the same bpf(2) calls with the same results (0 or -errno) on a real map, each command reaches
 * the kernel with its own flags, and BPFCTL_MAP_STUBS=0 selects the fallback.
 */
import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap } from '../../loader/index.ts';
import { addressNumber, MAP_ATTR_SIZE, type MapSyscalls, mapSyscalls } from '../../loader/map-syscall.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';

let before: Snapshot;
test.before(async () => {
  await new Promise((r) => setTimeout(r, 500)); // let tsx settle its cache fds (see objects-maps)
  before = snapshot();
});

const ENOENT = 2;
const EBADF = 9;
const EEXIST = 17;
const EINVAL = 22;

/** An attr (map_fd, key, value, flags); the caller keeps key and value referenced. Delete takes no value. */
function attr(fd: number, key: Uint8Array, value: Uint8Array | null, flags: number): Uint8Array {
  const a = new Uint8Array(new ArrayBuffer(MAP_ATTR_SIZE));
  const dv = new DataView(a.buffer);
  dv.setInt32(0, fd, true);
  dv.setBigUint64(8, BigInt(addressNumber(key)), true);
  if (value) dv.setBigUint64(16, BigInt(addressNumber(value)), true);
  dv.setBigUint64(24, BigInt(flags), true);
  return a;
}

function exercise(calls: MapSyscalls): void {
  const m = BpfMap.create({ type: 'hash', name: `sys_${calls.kind}`, keySize: 4, valueSize: 8, maxEntries: 4 });
  try {
    const key = new Uint8Array(new ArrayBuffer(4));
    const value = new Uint8Array(new ArrayBuffer(8));
    const anyAttr = attr(m.fd, key, value, 0);
    const noexist = attr(m.fd, key, value, 1);
    const exist = attr(m.fd, key, value, 2);
    const del = attr(m.fd, key, null, 0);
    const run = (a: Uint8Array, f: () => number) => {
      calls.slot[0] = addressNumber(a);
      return f();
    };
    key.set([7, 0, 0, 0]);
    assert.is(run(anyAttr, calls.lookup), -ENOENT, `${calls.kind}: absent key`);
    assert.is(run(exist, calls.update), -ENOENT, `${calls.kind}: 'exist' on an absent key`);
    value.set([42, 0, 0, 0, 0, 0, 0, 1]);
    assert.is(run(noexist, calls.update), 0);
    assert.is(run(noexist, calls.update), -EEXIST, `${calls.kind}: 'noexist' on a present key`);
    assert.equal([...m.lookup(key)!], [42, 0, 0, 0, 0, 0, 0, 1], 'the kernel has what the call wrote');
    m.update(key, new Uint8Array([9, 0, 0, 0, 0, 0, 0, 0]));
    value.fill(0);
    assert.is(run(anyAttr, calls.lookup), 0);
    assert.equal([...value], [9, 0, 0, 0, 0, 0, 0, 0], `${calls.kind}: lookup filled the value`);
    assert.is(run(anyAttr, calls.delete), -EINVAL, `${calls.kind}: the kernel saw delete's attr (a value is not allowed)`);
    assert.is(run(del, calls.delete), 0);
    assert.is(run(del, calls.delete), -ENOENT);
    assert.is(m.lookup(key), null);
    assert.is(run(attr(-1, key, value, 0), calls.lookup), -EBADF, `${calls.kind}: bad fd`);
  } finally {
    m.close();
  }
}

test('the stubs make the calls, with the kernel result', () => {
  const calls = mapSyscalls('stub');
  assert.is(calls.kind, 'stub', 'the compiled helper is the default');
  exercise(calls);
});

test('the libc syscall() fallback makes the same calls', () => {
  exercise(mapSyscalls('syscall'));
});

test('BPFCTL_MAP_STUBS=0 selects the fallback', () => {
  const code = "import('./loader/map-syscall.ts').then((m) => process.stdout.write(m.mapSyscalls().kind))";
  const run = (env: NodeJS.ProcessEnv) => execFileSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8', env: { ...process.env, ...env } });
  assert.is(run({ BPFCTL_MAP_STUBS: '0' }), 'syscall');
  assert.is(run({ BPFCTL_MAP_STUBS: undefined }), 'stub');
});

test('nothing leaks', async () => {
  assert.equal(await leaksSince(before), []);
});

test.run();
