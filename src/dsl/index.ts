// The public DSL: `import { definePolicy } from 'bpfctl'` resolves here (package.json "exports").
export * from './packet.ts';
export * from './policy.ts';
export * from './tc.ts';
export * from './xdp.ts';
