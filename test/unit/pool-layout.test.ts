/**
 * The pool layout is one contract in two languages: compile a tiny C program against
 * bpf/include/bpfctl/pool.h that prints offsetof/sizeof and the constants, and compare every
 * number with src/schema/pool-layout.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BACKING_CODE, geometry, HDR, HEADER_SIZE, MAGIC, META, META_OFF, META_SIZE, NONE, STATE_FREE, STATE_IN_USE, VERSION } from '../../src/schema/pool-layout.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const PROGRAM = `
#include <bpfctl/pool.h>
#include <stdio.h>
#define H(f) printf("\\"%s\\":%zu,", #f, offsetof(struct bpfctl_pool_hdr, f))
#define M(f) printf("\\"%s\\":%zu,", #f, offsetof(struct bpfctl_pool_meta, f))
int main(void) {
  printf("{\\"hdr\\":{");
  H(magic); H(version); H(header_size); H(meta_size); H(buf_size); H(buf_count); H(meta_off); H(data_off);
  H(total_size); H(creator_pid); H(backing); H(ext_off); H(ext_size); H(free_head); H(allocs); H(frees); H(alloc_fails); H(reclaimed); H(refused);
  printf("\\"sizeof\\":%zu},\\"meta\\":{", sizeof(struct bpfctl_pool_hdr));
  M(next); M(owner); M(gen_state);
  printf("\\"sizeof\\":%zu},", sizeof(struct bpfctl_pool_meta));
  printf("\\"magic\\":%u,\\"version\\":%u,\\"none\\":%u,\\"free\\":%u,\\"inUse\\":%u,", BPFCTL_POOL_MAGIC, BPFCTL_POOL_VERSION,
         BPFCTL_POOL_NONE, BPFCTL_POOL_STATE_FREE, BPFCTL_POOL_STATE_IN_USE);
  printf("\\"backing\\":[%u,%u,%u],", BPFCTL_POOL_BACKING_HUGETLBFS, BPFCTL_POOL_BACKING_SHM, BPFCTL_POOL_BACKING_MEMFD);
  /* where gen and state sit inside the 64-bit word, as bytes of the entry */
  struct bpfctl_pool_meta m = {0};
  atomic_store(&m.gen_state, BPFCTL_POOL_GS(0x11223344u, 0x55u));
  const unsigned char *b = (const unsigned char *)&m;
  printf("\\"genByte\\":%u,\\"stateByte\\":%u}\\n", b[8], b[12]);
  return 0;
}
`;

test('pool.h and layout.ts agree on every offset, size and constant', () => {
  const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-pool-layout-`));
  try {
    writeFileSync(join(dir, 'layout.c'), PROGRAM);
    execFileSync('cc', ['-std=c11', '-Wall', '-Werror', '-I', join(ROOT, 'bpf/include'), '-o', join(dir, 'layout'), join(dir, 'layout.c')], { stdio: 'pipe' });
    const c = JSON.parse(execFileSync(join(dir, 'layout'), { encoding: 'utf8' }));
    assert.equal(c.hdr, {
      magic: HDR.magic,
      version: HDR.version,
      header_size: HDR.headerSize,
      meta_size: HDR.metaSize,
      buf_size: HDR.bufSize,
      buf_count: HDR.bufCount,
      meta_off: HDR.metaOff,
      data_off: HDR.dataOff,
      total_size: HDR.totalSize,
      creator_pid: HDR.creatorPid,
      backing: HDR.backing,
      ext_off: HDR.extOff,
      ext_size: HDR.extSize,
      free_head: HDR.freeHead,
      allocs: HDR.allocs,
      frees: HDR.frees,
      alloc_fails: HDR.allocFails,
      reclaimed: HDR.reclaimed,
      refused: HDR.refused,
      sizeof: HEADER_SIZE,
    });
    assert.equal(c.meta, { next: META.next, owner: META.owner, gen_state: META.gen, sizeof: META_SIZE });
    assert.is(c.genByte, 0x44, 'gen is the low half of gen_state (little-endian)');
    assert.is(c.stateByte, 0x55, 'state is the high half');
    assert.is(META.state, META.gen + 4);
    assert.is(c.magic, MAGIC);
    assert.is(c.version, VERSION);
    assert.is(c.none, NONE);
    assert.is(c.free, STATE_FREE);
    assert.is(c.inUse, STATE_IN_USE);
    assert.equal(c.backing, [BACKING_CODE.hugetlbfs, BACKING_CODE.shm, BACKING_CODE.memfd]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('geometry: cache-line buffers, page-aligned data, sizes rounded to the backing page', () => {
  assert.is(META_OFF, HEADER_SIZE);
  const g = geometry(1000, 100);
  assert.equal(g, { bufSize: 1024, bufCount: 100, extOff: 0, extSize: 0, dataOff: 4096, usedSize: 4096 + 102400, totalSize: 4096 * 26 });
  assert.is(geometry(64, 1).bufSize, 64);
  assert.is(geometry(65, 1).bufSize, 128);
  // 1024 entries of metadata (16 KiB) push the data past the header page.
  assert.is(geometry(2048, 1024).dataOff, 20480);
  const huge = geometry(2048, 1024, 2 << 20);
  assert.is(huge.totalSize, 2 * (2 << 20));
  assert.is(huge.dataOff % 4096, 0);
});

test('geometry: an extension area sits page aligned between the metadata and the buffers', () => {
  const g = geometry(2048, 1024, 4096, 5000);
  assert.is(g.extOff, 20480, 'right after the metadata pages');
  assert.is(g.extSize, 5000);
  assert.is(g.dataOff, 20480 + 8192, 'buffers start on the page after the area');
  assert.is(g.usedSize, g.dataOff + 2048 * 1024);
  assert.equal(geometry(2048, 1024, 4096, 0), geometry(2048, 1024), 'no area: the layout of before');
});

test.run();
