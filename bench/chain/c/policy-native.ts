// The chain bench's C functions behind the native (C) gateway: ./policy.ts with
// `gateway: { engine: 'native' }`: no Node process on the request path at all.
import { definePolicy } from 'bpfctl';

export default definePolicy({
  name: 'bench-chain-c-native',
  gateway: { engine: 'native' },
  functions: {
    upper: { instances: 1, handler: './upper.c', language: 'c' },
    reverse: { instances: 1, handler: './reverse.c', language: 'c' },
    stamp: { instances: 1, handler: './stamp.c', language: 'c' },
  },
  routes: { '/chain': ['upper', 'reverse', 'stamp'] },
  pool: { bufferSize: 512, bufferCount: 1024 },
});
