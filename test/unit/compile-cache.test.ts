import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cacheKey, compileBpf } from '../../src/compile/index.ts';

const cacheDir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-cache-`));
const srcDir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-src-`));

const SOURCE = `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
`;

test('first compile misses, the same input hits, a change misses', () => {
  const a = compileBpf({ source: SOURCE, name: 'pass' }, { cacheDir });
  assert.is(a.cached, false);
  assert.ok(a.objectPath.startsWith(cacheDir));
  assert.match(a.objectPath, /pass-[0-9a-f]{16}\.bpf\.o$/);
  assert.equal([...readFileSync(a.objectPath).subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], 'an ELF file');

  const b = compileBpf({ source: SOURCE, name: 'pass' }, { cacheDir });
  assert.is(b.cached, true);
  assert.is(b.objectPath, a.objectPath);

  const c = compileBpf({ source: `${SOURCE}// changed\n`, name: 'pass' }, { cacheDir });
  assert.is(c.cached, false);
  assert.is.not(c.objectPath, a.objectPath);

  const d = compileBpf({ source: SOURCE, name: 'pass' }, { cacheDir, defines: { MAX_ROUTES: 64 } });
  assert.is(d.cached, false, 'flags are part of the key');
});

test('a file source: a header next to it is part of the key', () => {
  const src = join(srcDir, 'prog.bpf.c');
  const hdr = join(srcDir, 'consts.h');
  writeFileSync(hdr, '#define RET XDP_PASS\n');
  writeFileSync(src, SOURCE.replace('return XDP_PASS', 'return RET').replace('#include <bpf/bpf_helpers.h>', '#include <bpf/bpf_helpers.h>\n#include "consts.h"'));
  const a = compileBpf(src, { cacheDir });
  assert.is(a.cached, false);
  assert.match(a.objectPath, /prog-[0-9a-f]{16}\.bpf\.o$/);
  assert.is(compileBpf(src, { cacheDir }).cached, true);
  writeFileSync(hdr, '#define RET XDP_DROP\n');
  const b = compileBpf(src, { cacheDir });
  assert.is(b.cached, false);
  assert.is.not(b.objectPath, a.objectPath);
});

test('output is reproducible: no absolute source paths in the object', () => {
  const a = compileBpf({ source: `${SOURCE}// repro\n`, name: 'repro' }, { cacheDir });
  const bytes = readFileSync(a.objectPath);
  assert.not.ok(bytes.includes(Buffer.from(cacheDir)), 'the cache path does not leak into DWARF/BTF');
  const other = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-cache2-`));
  try {
    const b = compileBpf({ source: `${SOURCE}// repro\n`, name: 'repro' }, { cacheDir: other });
    assert.is(b.cached, false);
    assert.ok(readFileSync(b.objectPath).equals(bytes), 'same bytes from another directory');
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
});

test('cacheKey covers every part', () => {
  const base = { source: 's', flags: ['-O2'], clangVersion: 'clang 14', headers: 'h' };
  const k = cacheKey(base);
  assert.is(cacheKey({ ...base }), k);
  for (const change of [{ source: 't' }, { flags: ['-O1'] }, { clangVersion: 'clang 15' }, { headers: 'h2' }]) {
    assert.is.not(cacheKey({ ...base, ...change }), k);
  }
});

test.after(() => {
  rmSync(cacheDir, { recursive: true, force: true });
  rmSync(srcDir, { recursive: true, force: true });
});

test.run();
