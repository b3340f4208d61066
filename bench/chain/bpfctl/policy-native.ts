// The chain bench's TypeScript functions behind the native (C) gateway: ./policy.ts with
// `gateway: { engine: 'native' }`, so the two differ only in the gateway.
import { definePolicy } from 'bpfctl';

export default definePolicy({
  name: 'bench-chain-ts-native',
  gateway: { engine: 'native' },
  functions: {
    upper: { instances: 1, handler: './functions/upper.ts' },
    reverse: { instances: 1, handler: './functions/reverse.ts' },
    stamp: { instances: 1, handler: './functions/stamp.ts' },
  },
  routes: { '/chain': ['upper', 'reverse', 'stamp'] },
  pool: { bufferSize: 512, bufferCount: 1024 },
});
