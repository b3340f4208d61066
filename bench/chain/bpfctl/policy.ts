// The chain bench's three functions as a bpfctl policy (TypeScript handlers): the same work as
// the plain-TCP and HTTP variants (../work.ts), one instance each, like theirs.
import { definePolicy } from 'bpfctl';

export default definePolicy({
  name: 'bench-chain-ts',
  functions: {
    upper: { instances: 1, handler: './functions/upper.ts' },
    reverse: { instances: 1, handler: './functions/reverse.ts' },
    stamp: { instances: 1, handler: './functions/stamp.ts' },
  },
  routes: { '/chain': ['upper', 'reverse', 'stamp'] },
  // The Node gateway: bpfctl-ts-native (policy-native.ts) is the same chain behind the C one.
  gateway: { engine: 'node' },
  // 128-byte payloads plus the stamp; enough buffers for wrk's 256 connections and the loop's 32.
  pool: { bufferSize: 512, bufferCount: 1024 },
});
