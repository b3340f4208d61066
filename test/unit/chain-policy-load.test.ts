/** loadPolicyFile: importing a user's policy.ts and the errors when that goes wrong. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PolicyError } from '../../src/ir/policy.ts';
import { loadPolicyFile, PolicyLoadError, resolveHandler, SourceError } from '../../src/load/index.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-policy-`));

async function loadFails(file: string): Promise<Error> {
  try {
    await loadPolicyFile(file);
  } catch (err) {
    return err as Error;
  }
  assert.unreachable('loaded');
  throw new Error('unreachable');
}

test('loads and lowers the example', async () => {
  const file = join(root, 'examples/hello-chain/policy.ts');
  const ir = await loadPolicyFile(file);
  assert.is(ir.name, 'hello-chain');
  assert.is(resolveHandler(file, ir.functions[0]!), join(root, 'examples/hello-chain/functions/upper.ts'));
});

test('missing file', async () => {
  const e = await loadFails(join(dir, 'nope.ts'));
  assert.instance(e, PolicyLoadError);
  assert.match(e.message, /policy file not found: .*nope\.ts/);
});

test('a syntax error names file:line:col and shows the line with a caret', async () => {
  const f = join(dir, 'broken.ts');
  writeFileSync(f, "import { definePolicy } from 'bpfctl';\nexport default definePolicy({\n  name: 'x',,\n});\n");
  const e = await loadFails(f);
  assert.instance(e, SourceError);
  assert.is((e as SourceError).code, 'E_SOURCE');
  assert.match(e.message, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:13: `));
  assert.is((e as SourceError).excerpt(), "3 |   name: 'x',,\n                ^");
});

test('a syntax error in a file the policy imports names that file', async () => {
  writeFileSync(join(dir, 'helper.ts'), 'export const n = (;\n');
  const f = join(dir, 'uses-helper.ts');
  writeFileSync(f, "import { n } from './helper.ts';\nexport default { name: String(n) };\n");
  const e = await loadFails(f);
  assert.instance(e, SourceError);
  assert.match(e.message, /helper\.ts:1:19: /);
});

test('a policy that throws while importing', async () => {
  const f = join(dir, 'throws.ts');
  writeFileSync(f, "throw new Error('no config here');\nexport default {};\n");
  const e = await loadFails(f);
  assert.instance(e, PolicyLoadError);
  assert.is((e as PolicyLoadError).code, 'E_POLICY_LOAD');
  assert.match(e.message, /^cannot import policy .*throws\.ts: no config here$/);
});

test("a policy outside any project imports 'bpfctl' from the running copy, and keeps its import.meta.url", async () => {
  // dir is under /tmp: no node_modules/bpfctl anywhere above it.
  const f = join(dir, 'outside.ts');
  writeFileSync(
    f,
    "import { definePolicy } from 'bpfctl';\nimport { fileURLToPath } from 'node:url';\nconst here: string = fileURLToPath(import.meta.url);\n" +
      "export default definePolicy({ name: here.endsWith('outside.ts') ? 'meta-ok' : 'meta-wrong', functions: { a: { instances: 1, handler: './a.ts' } }, routes: { r: ['a'] } });\n",
  );
  const ir = await loadPolicyFile(f);
  assert.is(ir.name, 'meta-ok');
});

test('an edited policy is read again by the same process', async () => {
  const f = join(dir, 'edited.ts');
  const write = (name: string) => writeFileSync(f, `export default { name: '${name}', functions: { a: { instances: 1, handler: './a.ts' } }, routes: { r: ['a'] } };\n`);
  write('first');
  assert.is((await loadPolicyFile(f)).name, 'first');
  write('second');
  assert.is((await loadPolicyFile(f)).name, 'second');
});

test('no default export', async () => {
  const f = join(dir, 'nodefault.ts');
  writeFileSync(f, 'export const policy = {};\n');
  const e = await loadFails(f);
  assert.instance(e, PolicyLoadError);
  assert.match(e.message, /has no default export \(write: export default definePolicy/);
});

test('a default export that does not validate', async () => {
  const f = join(dir, 'invalid.ts');
  writeFileSync(f, "export default { name: 'x', functions: { a: { instances: 1, handler: './a.ts' } }, routes: { r: ['b'] }, pool: { bufferSize: 64, bufferCount: 1 } };\n");
  const e = await loadFails(f);
  assert.instance(e, PolicyError);
  assert.is((e as PolicyError).path, 'routes.r[0]');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
