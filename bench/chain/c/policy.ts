// The chain bench's three functions in C (C SDK, bpf/include/bpfctl/fn.h): the same work and
// shape as ../bpfctl/policy.ts, so the two differ only in the language of the functions.
import { definePolicy } from 'bpfctl';

export default definePolicy({
  name: 'bench-chain-c',
  functions: {
    upper: { instances: 1, handler: './upper.c', language: 'c' },
    reverse: { instances: 1, handler: './reverse.c', language: 'c' },
    stamp: { instances: 1, handler: './stamp.c', language: 'c' },
  },
  routes: { '/chain': ['upper', 'reverse', 'stamp'] },
  // The Node gateway, as bpfctl-ts has; bpfctl-c-native (policy-native.ts) uses the C one.
  gateway: { engine: 'node' },
  pool: { bufferSize: 512, bufferCount: 1024 },
});
