/** `hashHandlers`: sha256 of each handler file (and the local files it brings), found relative to the policy file. */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HandlerFileError, hashHandlers } from '../../src/deploy/code-hash.ts';
import { BpfctlError } from '../../src/errors.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-code-hash-`));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ir = lowerPolicy({
  name: 'h',
  functions: {
    upper: { instances: 1, handler: './functions/upper.ts' },
    shout: { instances: 1, handler: '../shared/shout.c', language: 'c' },
  },
  routes: { '/a': ['upper', 'shout'] },
});

function writeHandlers(dir: string): string {
  mkdirSync(join(dir, 'policy/functions'), { recursive: true });
  mkdirSync(join(dir, 'shared'), { recursive: true });
  writeFileSync(join(dir, 'policy/functions/upper.ts'), 'export default () => 0;\n');
  writeFileSync(join(dir, 'shared/shout.c'), 'int x;\n');
  return join(dir, 'policy/policy.ts');
}

test('hashes each handler file, relative to the policy file', () => {
  withDir((dir) => {
    const policyFile = writeHandlers(dir);
    assert.equal(hashHandlers(policyFile, ir), { upper: sha('export default () => 0;\n'), shout: sha('int x;\n') });
  });
});

test('a relative policy path resolves from the working directory', () => {
  withDir((dir) => {
    const policyFile = writeHandlers(dir);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      assert.equal(hashHandlers('policy/policy.ts', ir), hashHandlers(policyFile, ir));
    } finally {
      process.chdir(cwd);
    }
  });
});

test('the hash follows the content, not the path or the modification time', () => {
  withDir((dir) => {
    const policyFile = writeHandlers(dir);
    const before = hashHandlers(policyFile, ir);
    writeFileSync(join(dir, 'policy/functions/upper.ts'), 'export default () => 0;\n');
    assert.equal(hashHandlers(policyFile, ir), before);
    writeFileSync(join(dir, 'policy/functions/upper.ts'), 'export default () => 1;\n');
    const after = hashHandlers(policyFile, ir);
    assert.is.not(after.upper, before.upper);
    assert.is(after.shout, before.shout);
    assert.match(after.upper!, /^[0-9a-f]{64}$/);
  });
});

test('a missing handler is E_HANDLER naming the function and the file', () => {
  withDir((dir) => {
    const policyFile = writeHandlers(dir);
    rmSync(join(dir, 'shared/shout.c'));
    try {
      hashHandlers(policyFile, ir);
      assert.unreachable('expected E_HANDLER');
    } catch (err) {
      assert.instance(err, HandlerFileError);
      assert.instance(err, BpfctlError);
      const e = err as HandlerFileError;
      assert.is(e.code, 'E_HANDLER');
      assert.is(e.path, 'functions.shout.handler');
      assert.is(e.function, 'shout');
      assert.is(e.file, join(dir, 'shared/shout.c'));
      assert.match(e.message, /^functions\.shout\.handler: handler file not found: /);
      assert.equal(e.toJSON(), { error: 'HandlerFileError', code: 'E_HANDLER', message: e.message, path: 'functions.shout.handler', function: 'shout', file: e.file });
    }
  });
});

test('a directory where a handler should be is E_HANDLER too', () => {
  withDir((dir) => {
    const policyFile = writeHandlers(dir);
    rmSync(join(dir, 'policy/functions/upper.ts'));
    mkdirSync(join(dir, 'policy/functions/upper.ts'));
    assert.throws(() => hashHandlers(policyFile, ir), (err: unknown) => err instanceof HandlerFileError && /directory/.test(err.message));
  });
});

test('an edit to a helper module a handler imports (or a header a C handler includes) changes its hash', () => {
  withDir((dir) => {
    const policyFile = writeHandlers(dir);
    const alone = hashHandlers(policyFile, ir);
    // upper imports ./lib/text (index.ts, found as esbuild would), which imports ../util.js (util.ts); shout includes "shout.h".
    mkdirSync(join(dir, 'policy/functions/lib/text'), { recursive: true });
    writeFileSync(join(dir, 'policy/functions/upper.ts'), "import { up } from './lib/text';\n// import './not-really.ts';\nexport default () => up();\n");
    writeFileSync(join(dir, 'policy/functions/lib/text/index.ts'), "import { one } from '../util.js';\nexport const up = () => one;\n");
    writeFileSync(join(dir, 'policy/functions/lib/util.ts'), 'export const one = 1;\n');
    writeFileSync(join(dir, 'shared/shout.c'), '#include "shout.h"\n#include <linux/bpf.h>\nint x;\n');
    writeFileSync(join(dir, 'shared/shout.h'), '#define N 1\n');
    const h1 = hashHandlers(policyFile, ir);
    assert.is.not(h1.upper, alone.upper);
    writeFileSync(join(dir, 'policy/functions/lib/util.ts'), 'export const one = 2;\n');
    writeFileSync(join(dir, 'shared/shout.h'), '#define N 2\n');
    const h2 = hashHandlers(policyFile, ir);
    assert.is.not(h2.upper, h1.upper, 'a file two imports away counts');
    assert.is.not(h2.shout, h1.shout, 'an included header counts');
    // Same content again: same hash (content, not time).
    writeFileSync(join(dir, 'policy/functions/lib/util.ts'), 'export const one = 1;\n');
    writeFileSync(join(dir, 'shared/shout.h'), '#define N 1\n');
    assert.equal(hashHandlers(policyFile, ir), h1);
  });
});

test('a policy without functions hashes nothing', () => {
  const xdpOnly = lowerPolicy({ name: 'fw', xdp: [{ interface: 'eth0' }] });
  assert.equal(hashHandlers('/nonexistent/policy.ts', xdpOnly), {});
});

test.run();
