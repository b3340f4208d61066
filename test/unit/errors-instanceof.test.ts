/** bpfctl's error classes are recognised across two copies of their module in one process. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfctlError } from '../../src/errors.ts';
import { UsageError } from '../../src/cli/errors.ts';

test('an error from another copy of the module is an instance of the same-named classes only', async () => {
  // A second ES module instance of the same files (another URL), as a CommonJS/ESM mix or two
  // installed copies give.
  const other = (await import(`../../src/cli/errors.ts?copy=${Date.now()}`)) as typeof import('../../src/cli/errors.ts');
  const otherBase = Object.getPrototypeOf(other.UsageError) as typeof BpfctlError;
  const e = new other.UsageError('x');
  assert.is.not(other.UsageError, UsageError, 'really two copies');
  assert.ok(e instanceof BpfctlError);
  assert.ok(e instanceof UsageError);
  assert.not.ok(new BpfctlError('E_X', 'y') instanceof UsageError, 'a base error is not a UsageError');
  assert.not.ok(new Error('plain') instanceof BpfctlError);
  assert.ok(new UsageError('z') instanceof otherBase);
  assert.not.ok({ constructor: { name: 'UsageError' } } instanceof UsageError, 'a look-alike without the brand is not');
});

test('the base class of another copy too', async () => {
  const other = (await import(`../../src/errors.ts?copy=${Date.now()}`)) as typeof import('../../src/errors.ts');
  assert.is.not(other.BpfctlError, BpfctlError);
  assert.ok(new other.BpfctlError('E_X', 'm') instanceof BpfctlError);
  assert.ok(new BpfctlError('E_X', 'm') instanceof other.BpfctlError);
  assert.not.ok(new other.BpfctlError('E_X', 'm') instanceof UsageError);
});

test.run();
