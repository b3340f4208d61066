/**
 * The DSL's types: a route naming a function the policy does not declare is a type error (checked
 * by `tsc --noEmit -p .`, which covers test/), and lowerPolicy still catches it for JavaScript.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { definePolicy, type RouteSpec } from '../../src/dsl/index.ts';
import { lowerPolicy, PolicyError } from '../../src/ir/policy.ts';

test('an unknown function in a route does not type check, and does not validate', () => {
  const spec = definePolicy({
    name: 'typed',
    functions: { upper: { instances: 1, handler: './upper.ts' }, reverse: { instances: 1, handler: './reverse.ts' } },
    routes: {
      // @ts-expect-error 'revrse' is not one of the policy's functions
      '/hello': ['upper', 'revrse'],
    },
    pool: { bufferSize: 4096, bufferCount: 8 },
  });
  try {
    lowerPolicy(spec);
    assert.unreachable('accepted');
  } catch (err) {
    assert.instance(err, PolicyError);
    assert.is((err as PolicyError).path, "routes['/hello'][1]");
  }
});

test('known functions type check and infer the name union', () => {
  const spec = definePolicy({
    name: 'typed',
    functions: { a: { instances: 1, handler: './a.ts' }, b: { instances: 2, handler: './b.ts', language: 'c' } },
    routes: { x: ['a', 'b', 'a'] },
    pool: { bufferSize: 4096, bufferCount: 8 },
  });
  const hopsOf = (r: readonly ('a' | 'b')[] | RouteSpec<'a' | 'b'> | undefined): ('a' | 'b')[] => (r === undefined ? [] : 'functions' in r ? [...r.functions] : [...r]);
  const names: ('a' | 'b')[] = hopsOf(spec.routes?.x);
  assert.equal(names, ['a', 'b', 'a']);
  // The long form is typed the same way: functions from the policy, methods from HttpMethod.
  const long = definePolicy({
    name: 'typed',
    functions: { a: { instances: 1, handler: './a.ts' }, b: { instances: 1, handler: './b.ts' } },
    routes: { x: { functions: ['b', 'a'], methods: ['GET', 'POST'] }, y: ['a'] },
    pool: { bufferSize: 4096, bufferCount: 8 },
  });
  assert.equal(hopsOf(long.routes?.x), ['b', 'a']);
  assert.equal(hopsOf(long.routes?.y), ['a']);
  assert.equal(lowerPolicy(long).routes.map((r) => [r.name, r.functions, r.methods]), [
    ['x', ['b', 'a'], ['GET', 'HEAD', 'POST']],
    ['y', ['a'], ['POST']],
  ]);
  definePolicy({
    name: 'typed',
    functions: { a: { instances: 1, handler: './a.ts' } },
    // @ts-expect-error 'z' is not one of the policy's functions (long form)
    routes: { x: { functions: ['z'] } },
    pool: { bufferSize: 4096, bufferCount: 8 },
  });
  definePolicy({
    name: 'typed',
    functions: { a: { instances: 1, handler: './a.ts' } },
    // @ts-expect-error 'BREW' is not an HTTP method
    routes: { x: { functions: ['a'], methods: ['BREW'] } },
    pool: { bufferSize: 4096, bufferCount: 8 },
  });
  // @ts-expect-error language is 'ts' | 'c'
  definePolicy({ name: 'l', functions: { a: { instances: 1, handler: './a.ts', language: 'go' } }, routes: { x: ['a'] }, pool: { bufferSize: 64, bufferCount: 1 } });
});

test.run();
