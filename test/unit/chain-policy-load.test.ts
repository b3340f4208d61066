/** loadPolicyFile: importing a user's policy.ts and the errors when that goes wrong. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PolicyError } from '../../src/ir/policy.ts';
import { loadPolicyFile, PolicyLoadError, resolveHandler } from '../../src/load/index.ts';

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

test('a file that does not import', async () => {
  const f = join(dir, 'broken.ts');
  writeFileSync(f, 'export default {{;\n');
  const e = await loadFails(f);
  assert.instance(e, PolicyLoadError);
  assert.is((e as PolicyLoadError).code, 'E_POLICY_LOAD');
  assert.match(e.message, /^cannot import policy .*broken\.ts: /);
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
