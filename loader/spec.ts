/**
 * ObjectSpec: what an ELF object declares (programs, maps with their BTF types, global
 * variables), as plain data. Reading it parses the ELF with libbpf without touching the kernel:
 * no root, no bpf() syscall, so tools and unit tests can inspect objects anywhere. The live side
 * (BpfObject after load(), BpfMap, BpfProgram, BpfLink) exists only in a kernel.
 *
 * Every live kind is built the same ways: `fromSpec` (create it from a spec), `fromFd` (adopt an
 * fd), `fromPin` (open a pin), `fromId` (open by kernel id).
 */
import { BpfObject, type GlobalSpec, type MapSpec, type OpenOptions, type ProgramSpec } from './object.ts';

export interface ObjectSpec {
  /** The object's name (the file name without .bpf.o and a compile-cache hash). */
  readonly name: string;
  /** Where it was read from, when it was a file. */
  readonly path?: string;
  readonly programs: readonly ProgramSpec[];
  readonly maps: readonly MapSpec[];
  readonly globals: readonly GlobalSpec[];
}

function specOf(obj: BpfObject, path?: string): ObjectSpec {
  const clone = <T>(x: T): T => structuredClone(x);
  return Object.freeze({
    name: obj.name,
    ...(path ? { path } : {}),
    programs: Object.freeze(obj.programs.map(clone)),
    maps: Object.freeze(obj.maps.map(clone)),
    globals: Object.freeze(obj.globals.map(clone)),
  });
}

/** The spec of the object at `path`. LoaderError E_NOENT / E_ELF as BpfObject.open, with libbpf's reason. */
export function readObjectSpec(path: string, opts: OpenOptions = {}): ObjectSpec {
  const obj = BpfObject.open(path, opts);
  try {
    return specOf(obj, path);
  } finally {
    obj.close();
  }
}

/** The spec of an ELF image in memory. */
export function objectSpecFromBuffer(elf: Uint8Array, name: string): ObjectSpec {
  const obj = BpfObject.openBuffer(elf, name);
  try {
    return specOf(obj);
  } finally {
    obj.close();
  }
}

/** Open the object a spec was read from, ready to adjust and load(). */
export function openSpec(spec: ObjectSpec, opts: Omit<OpenOptions, 'name'> = {}): BpfObject {
  return BpfObject.fromSpec(spec, opts);
}
