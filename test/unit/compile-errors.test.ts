import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfctlError } from '../../src/errors.ts';
import { CompileError, compileBpf, parseDiagnostics } from '../../src/compile/index.ts';

const cacheDir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-cache-`));

const BROKEN = `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int broken(struct xdp_md *ctx) {
  int unused_var;
  return XDP_PAS;
}
`;

test('a compile error carries parsed diagnostics and a one-line message', () => {
  let err: unknown;
  try {
    compileBpf({ source: BROKEN, name: 'broken' }, { cacheDir });
  } catch (e) {
    err = e;
  }
  assert.instance(err, CompileError);
  assert.instance(err, BpfctlError);
  const c = err as CompileError;
  assert.is(c.code, 'E_COMPILE');
  assert.not.match(c.message, /\n/);
  assert.match(c.message, /^broken\.bpf\.c:5:10: use of undeclared identifier 'XDP_PAS'/);
  const first = c.diagnostics.find((d) => d.severity === 'error');
  assert.equal(first, { file: 'broken.bpf.c', line: 5, column: 10, severity: 'error', message: "use of undeclared identifier 'XDP_PAS'; did you mean 'XDP_PASS'?" });
  assert.ok(c.diagnostics.some((d) => d.severity === 'note'), 'notes are kept too');
  assert.match(c.detail(), /XDP_PAS/);
  assert.not.match(c.stderr, new RegExp(cacheDir), 'no temp paths in the diagnostics');
  assert.is((c.toJSON() as { diagnostics: unknown[] }).diagnostics.length, c.diagnostics.length);
});

test('a missing include is a fatal error', () => {
  try {
    compileBpf({ source: '#include "no/such/header.h"\n', name: 'missing' }, { cacheDir });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, CompileError);
    assert.is((e as CompileError).diagnostics[0]?.severity, 'fatal error');
    assert.match((e as CompileError).message, /'no\/such\/header\.h' file not found/);
  }
});

test('a missing source file and a missing clang are CompileErrors', () => {
  assert.throws(() => compileBpf('/nonexistent/x.bpf.c', { cacheDir }), (e: unknown) => e instanceof CompileError && /source not found/.test(e.message));
  assert.throws(
    () => compileBpf({ source: 'int x;', name: 'x' }, { cacheDir, clang: '/nonexistent/clang' }),
    (e: unknown) => e instanceof CompileError && /cannot run \/nonexistent\/clang/.test(e.message),
  );
});

test('parseDiagnostics skips source excerpts and carets', () => {
  const d = parseDiagnostics(`a.c:1:2: warning: w\n  int x;\n      ^\na.c:3:4: error: e: with colon\n1 warning and 1 error generated.\n`);
  assert.equal(d, [
    { file: 'a.c', line: 1, column: 2, severity: 'warning', message: 'w' },
    { file: 'a.c', line: 3, column: 4, severity: 'error', message: 'e: with colon' },
  ]);
});

test.after(() => rmSync(cacheDir, { recursive: true, force: true }));

test.run();
