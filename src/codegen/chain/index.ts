export { CHAIN_MAPS } from './maps-c.ts';
export {
  CHAIN_DIR,
  CHAIN_HEADER,
  CHAIN_PROGRAMS,
  CHAIN_SOURCE,
  type ChainOptions,
  chainDefines,
  chainSources,
  DEFAULT_DROP_VERDICT,
  type DropVerdict,
  type GeneratedSource,
  generateChainHeader,
} from './generate.ts';
