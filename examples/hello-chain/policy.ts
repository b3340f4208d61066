// A three-function chain: /hello upper-cases and reverses a greeting, /shout only upper-cases
// and stamps it. Run it with `bpfctl run examples/hello-chain/policy.ts`.
import { definePolicy } from 'bpfctl';

export default definePolicy({
  name: 'hello-chain',
  functions: {
    upper: { instances: 2, handler: './functions/upper.ts' },
    reverse: { instances: 1, handler: './functions/reverse.ts' },
    stamp: { instances: 1, handler: './functions/stamp.ts', maxInFlight: 64 },
  },
  routes: {
    '/hello': ['upper', 'reverse', 'stamp'],
    '/shout': ['upper', 'stamp'],
  },
  pool: { bufferSize: 4096, bufferCount: 1024 },
});
