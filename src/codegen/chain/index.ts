export { CHAIN_MAPS } from './maps-c.ts';
export { CHAIN_PROGRAMS, type ChainOptions, chainFileName, DEFAULT_DROP_VERDICT, type GeneratedSource, generateChain } from './generate.ts';
export type { DropVerdict } from './sk-msg.ts';
