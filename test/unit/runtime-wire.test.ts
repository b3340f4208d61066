/**
 * The runtime's hot-path descriptor code against the contract: the schema codec
 * (src/schema/descriptor.ts) and the C declaration in bpf/include/bpfctl/fn.h.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DESC_DROP_REASON_SHIFT } from '../../src/ir/chain-limits.ts';
import { ENV, functionEnv } from '../../src/runtime/sdk/env.ts';
import {
  Batcher,
  bounce,
  canBounce,
  DESC_FLAG_DROPPED,
  DESC_FLAG_ERROR,
  type Desc,
  FrameReader,
  readDesc,
  writeDesc,
} from '../../src/runtime/sdk/wire.ts';
import { DESC_OFFSETS, DESC_SIZE, type Descriptor, descriptor } from '../../src/schema/descriptor.ts';
import { decode, encode } from '../../src/schema/encode.ts';

let seed = 42;
const rnd = (max: number) => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed % max;
};
const randomDesc = (): Desc => ({
  route: rnd(0x10000),
  hop: rnd(256),
  flags: rnd(256),
  gwInst: rnd(0x10000),
  status: rnd(0x10000),
  reqId: rnd(0x100000000),
  bufOff: rnd(0x100000000),
  bufLen: rnd(0x100000000),
  bufGen: rnd(0x100000000),
});
const toSchema = (d: Desc): Descriptor => ({
  route: d.route,
  hop: d.hop,
  flags: d.flags,
  gw_inst: d.gwInst,
  status: d.status,
  req_id: d.reqId,
  buf_off: d.bufOff,
  buf_len: d.bufLen,
  buf_gen: d.bufGen,
});

test('readDesc/writeDesc agree with the schema codec', () => {
  for (let i = 0; i < 200; i++) {
    const d = randomDesc();
    const b = Buffer.alloc(DESC_SIZE);
    writeDesc(b, 0, d);
    assert.equal([...b], [...encode(descriptor, toSchema(d))]);
    assert.equal(readDesc(Buffer.from(encode(descriptor, toSchema(d))), 0), d);
    assert.equal(decode(descriptor, b), toSchema(d));
  }
});

test('FrameReader: any split of the stream gives the same descriptors', () => {
  const ds = Array.from({ length: 40 }, randomDesc);
  const stream = Buffer.alloc(ds.length * DESC_SIZE);
  ds.forEach((d, i) => {
    writeDesc(stream, i * DESC_SIZE, d);
  });
  for (let round = 0; round < 50; round++) {
    const got: Desc[] = [];
    const r = new FrameReader((d) => got.push(d));
    // A reused read buffer, as with net `onread`: the reader must copy what it keeps.
    const scratch = Buffer.alloc(256);
    let at = 0;
    while (at < stream.length) {
      const n = Math.min(1 + rnd(100), stream.length - at, scratch.length);
      stream.copy(scratch, 0, at, at + n);
      r.push(scratch, n);
      scratch.fill(0xee);
      at += n;
    }
    assert.equal(got, ds);
    assert.is(r.pending, 0);
  }
});

test('Batcher: one buffer per flush, descriptors for one destination kept together', () => {
  const b = new Batcher();
  assert.is(b.take(), null);
  const ds = Array.from({ length: 6 }, randomDesc);
  const dests = [1, 2, 1, 3, 2, 1];
  ds.forEach((d, i) => {
    b.add(d, dests[i]!);
  });
  const out = b.take()!;
  assert.is(out.bytes.length, 6 * DESC_SIZE);
  assert.equal(out.descs, [ds[0], ds[2], ds[5], ds[1], ds[4], ds[3]]);
  for (let i = 0; i < 6; i++) assert.equal(readDesc(out.bytes, i * DESC_SIZE), out.descs[i]);
  assert.is(b.size, 0);
  b.add(ds[0]!, 9);
  b.add(ds[1]!, 9);
  assert.equal(b.take()!.descs, [ds[0], ds[1]]);
});

test('refused descriptors: only target failures on the way out bounce, as a bare 503', () => {
  const d = (reason: number, hop: number): Desc => ({ ...randomDesc(), hop, flags: DESC_FLAG_DROPPED | (reason << DESC_DROP_REASON_SHIFT) });
  assert.ok(canBounce(d(4, 1), 3)); // no live instance
  assert.ok(canBounce(d(5, 0), 3)); // dead socket
  assert.not.ok(canBounce(d(5, 3), 3), 'already on its way to the gateway');
  assert.not.ok(canBounce(d(3, 1), 3), 'bad buffer');
  assert.not.ok(canBounce(d(1, 1), 3), 'unknown route');
  assert.not.ok(canBounce({ ...d(4, 1), flags: 0 }, 3), 'not refused');
  assert.not.ok(canBounce(d(4, 1), undefined), 'route unknown here');
  // An error reply (ERROR: on its way to the gateway whatever its hop) refused on the way back
  // is not bounced again.
  assert.not.ok(canBounce({ ...d(4, 1), flags: d(4, 1).flags | DESC_FLAG_ERROR }, 3), 'error reply');
  assert.not.ok(canBounce({ ...d(5, 0), flags: d(5, 0).flags | DESC_FLAG_ERROR }, 3), 'error reply, dead socket');
  const b = d(4, 1);
  bounce(b, 3);
  assert.is(b.flags, DESC_FLAG_ERROR);
  assert.is(b.status, 503);
  assert.is(b.hop, 3);
  assert.is(b.bufLen, 0);
});

test('fn.h declares the descriptor exactly as the schema lays it out', () => {
  const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-fnh-`));
  try {
    const fields = Object.keys(DESC_OFFSETS);
    writeFileSync(
      join(dir, 'off.c'),
      `#include <stdio.h>\n#include <stddef.h>\n#include "bpfctl/fn.h"\nint main(void){printf("%zu",sizeof(struct bpfctl_desc));${fields
        .map((f) => `printf(" %zu",offsetof(struct bpfctl_desc,${f}));`)
        .join('')}return 0;}\n`,
    );
    execFileSync('cc', ['-std=c11', `-I${resolve('bpf/include')}`, '-o', join(dir, 'off'), join(dir, 'off.c')]);
    const [size, ...offs] = execFileSync(join(dir, 'off'), { encoding: 'utf8' }).split(' ').map(Number);
    assert.is(size, DESC_SIZE);
    assert.equal(offs, Object.values(DESC_OFFSETS));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('functionEnv spells out who the instance is and where the live routes are, never the routes', () => {
  const env = functionEnv({ functionName: 'b', fnId: 2, instance: 1, hubPort: 4000, pool: '/dev/shm/x', pinDir: '/sys/fs/bpf/bpfctl/env-test', maxInFlight: 4, sockFd: 4, readyFd: 3 });
  assert.equal(env, {
    [ENV.fn]: 'b',
    [ENV.fnId]: '2',
    [ENV.inst]: '1',
    [ENV.hubPort]: '4000',
    [ENV.pool]: '/dev/shm/x',
    [ENV.pinDir]: '/sys/fs/bpf/bpfctl/env-test',
    [ENV.maxInFlight]: '4',
    [ENV.sockFd]: '4',
    [ENV.readyFd]: '3',
  });
  // The C library reads these names (src/runtime/c/fn.c).
  assert.is(ENV.sockFd, 'BPFCTL_SOCK_FD');
  assert.is(ENV.readyFd, 'BPFCTL_READY_FD');
  assert.is(ENV.fnId, 'BPFCTL_FN_ID');
  // A TS instance: the handler module, no inherited socket (it registers over IPC); no
  // maxInFlight when the policy leaves it to the default.
  const ts = functionEnv({ functionName: 'a', fnId: 1, instance: 0, hubPort: 4000, pool: '/dev/shm/x', pinDir: '/p', maxInFlight: null, handler: '/p/a.ts' });
  assert.equal(ts, {
    [ENV.fn]: 'a',
    [ENV.fnId]: '1',
    [ENV.inst]: '0',
    [ENV.hubPort]: '4000',
    [ENV.pool]: '/dev/shm/x',
    [ENV.pinDir]: '/p',
    [ENV.handler]: '/p/a.ts',
  });
  // Routes are live state: nothing in the environment describes them, and registration ports
  // and cgroups are gone with sockops registration.
  for (const name of Object.values(ENV)) assert.not.match(name, /ROUTE|REG_PORT|CGROUP/);
  for (const name of Object.keys(env)) assert.not.match(name, /ROUTE|REG_PORT|CGROUP/);
});

test.run();
