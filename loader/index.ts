/** The loader's public API: the only code in bpfctl that talks to libbpf. */
export type { SockMapAttachKind, SockMapAttachment } from './attach-sockmap.ts';
export { XdpAttachment, type XdpAttachOptions, type XdpMode } from './attach-xdp.ts';
export type { BtfType } from './btf.ts';
export { errnoName, explainErrno, LoaderError, VerifierError } from './errors.ts';
export { type Attachment, BpfLink } from './link.ts';
export { BpfMap, possibleCpus } from './map.ts';
export { withNetns } from './netns.ts';
export { BpfObject, type MapSpec, type ProgramSpec } from './object.ts';
export { DEFAULT_BPFFS, ensureBpffs, isBpffs, mkdirp, unpin, unpinAll } from './pin.ts';
export { BpfProgram, type TestRunResult } from './program.ts';
export { type LinkInfo, listLinks, listMaps, listPrograms, type MapInfo, type ProgInfo } from './system.ts';
export { BPF_F_MMAPABLE, MappedArray, mmapArray } from './map-mmap.ts';
