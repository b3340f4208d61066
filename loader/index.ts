/** The loader's public API: the only code in bpfctl that talks to libbpf. */
export { attachSockMapLink, detachSockMap, type SockMapAttachKind, type SockMapAttachment } from './attach-sockmap.ts';
export type { TcDirection } from './attach-tc.ts';
export { ensureTracefs, tracepointId } from './attach-trace.ts';
export { XdpAttachment, type XdpAttachOptions, type XdpMode } from './attach-xdp.ts';
export { type BtfType, type GlobalVar, isDatasec } from './btf.ts';
export { errnoName, explainErrno, LoaderError, type LoaderErrorCode, libbpfReason, VerifierError } from './errors.ts';
export { type Attachment, BpfLink } from './link.ts';
export { BpfMap, possibleCpus } from './map.ts';
export { MapHotPath } from './map-hot.ts';
export { withNetns } from './netns.ts';
export { BpfObject, type GlobalSpec, type GlobalValue, type MapSpec, type OpenOptions, type ProgramSpec } from './object.ts';
export { DEFAULT_BPFFS, ensureBpffs, isBpffs, mkdirp, pinName, unpin, unpinAll } from './pin.ts';
export { readJsonPin, writeJsonPin } from './pin-json.ts';
export { pinsByKind } from './pin-scan.ts';
export { BpfProgram, type TestRunResult } from './program.ts';
export { type ObjectSpec, objectSpecFromBuffer, openSpec, readObjectSpec } from './spec.ts';
export { type LinkInfo, listLinks, listMaps, listPrograms, type MapInfo, type ProgInfo } from './system.ts';
export { BPF_F_MMAPABLE, MappedArray, mmapArray } from './map-mmap.ts';
