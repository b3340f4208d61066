/**
 * `bpfctl/loader`: bpfctl as a library for eBPF objects it did not write, the way cilium/ebpf or
 * libbpf are used: open and load objects, pin, attach, and read and write maps with typed codecs.
 * What `bpfctl gen types` skeletons import.
 */
export * from '../../loader/index.ts';
export * from '../schema/index.ts';
export { TypedMap, type TypedMapOptions } from './typed-map.ts';
// The loader and the codecs both name the BTF type shape; skeletons pass it to the codecs.
export type { BtfType } from '../schema/index.ts';
