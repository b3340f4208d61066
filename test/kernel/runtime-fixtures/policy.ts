// The policy of runtime-chain.test.ts: the hello-chain functions plus a C function and a test
// handler that fails on demand, in routes that mix them.
import { definePolicy } from '../../../src/dsl/index.ts';

export default definePolicy({
  name: process.env.RT_POLICY_NAME ?? 'rtchain',
  functions: {
    upper: { instances: 2, handler: '../../../examples/hello-chain/functions/upper.ts' },
    reverse: { instances: 1, handler: '../../../examples/hello-chain/functions/reverse.ts' },
    stamp: { instances: 1, handler: '../../../examples/hello-chain/functions/stamp.ts' },
    shout: { instances: 2, handler: '../../../examples/hello-chain/functions/shout.c', language: 'c' },
    flaky: { instances: 1, handler: './flaky.ts', maxInFlight: 8 },
  },
  routes: {
    '/hello': ['upper', 'reverse', 'stamp'],
    '/shout': ['upper', 'stamp'],
    '/mixed': ['shout', 'reverse'],
    '/c-first': ['shout', 'stamp'],
    '/c-only': ['shout'],
    '/flaky': ['flaky'],
    '/late-fail': ['upper', 'flaky', 'stamp'],
  },
  pool: { bufferSize: 1024, bufferCount: 256 },
});
