/**
 * bpf_obj_get_info_by_fd decoders for programs, maps and links (layouts from linux/bpf.h,
 * x86-64), plus the fd helpers every loader file needs.
 */
import { readFileSync } from 'node:fs';
import { check, loaderError } from './errors.ts';
import { addressOf, c, lastErrno, lib, viewOf } from './libbpf.ts';
import { attachTypeName, linkTypeName, mapTypeName, progTypeName } from './types.ts';

export interface ProgInfo {
  id: number;
  name: string;
  type: string;
  /** The program's tag (hash of its instructions), hex, as bpftool prints it. */
  tag: string;
  mapIds: number[];
  btfId: number;
  /** Nanoseconds since boot. */
  loadTime: bigint;
  /** Bytes of the program after the verifier's rewrites, and of its JIT image. */
  xlatedLen?: number;
  jitedLen?: number;
  verifiedInsns?: number;
  /** Time spent in the program and runs, when kernel.bpf_stats_enabled is on. */
  runTimeNs?: bigint;
  runCnt?: bigint;
}

export interface MapInfo {
  id: number;
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

export interface LinkInfo {
  id: number;
  type: string;
  progId: number;
  /** What the link attaches to: 'ifindex:3', 'cgroup:1234', 'netns:4026531840', or the link type. */
  target: string;
  attachType?: string;
}

function cstr(buf: Buffer, off: number, len: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
}

function rawInfo(fd: number, size: number, prepare?: (b: Buffer) => void): Buffer {
  const buf = Buffer.alloc(size);
  prepare?.(buf);
  const len = new Uint32Array([size]);
  check(lib().bpf_obj_get_info_by_fd(fd, buf, len), 'bpf_obj_get_info_by_fd');
  return buf;
}

const PROG_INFO_SIZE = 232;
const MAP_INFO_SIZE = 88;
const LINK_INFO_SIZE = 64;

export function progInfo(fd: number): ProgInfo {
  let b = rawInfo(fd, PROG_INFO_SIZE);
  const nrMaps = b.readUInt32LE(52);
  let mapIds: number[] = [];
  if (nrMaps) {
    const ids = new Uint32Array(nrMaps);
    b = rawInfo(fd, PROG_INFO_SIZE, (p) => {
      p.writeUInt32LE(nrMaps, 52);
      p.writeBigUInt64LE(addressOf(new Uint8Array(ids.buffer)), 56);
    });
    mapIds = [...ids];
  }
  return {
    type: progTypeName(b.readUInt32LE(0)),
    id: b.readUInt32LE(4),
    tag: b.subarray(8, 16).toString('hex'),
    loadTime: b.readBigUInt64LE(40),
    mapIds,
    name: cstr(b, 64, 16),
    btfId: b.readUInt32LE(128),
    jitedLen: b.readUInt32LE(16),
    xlatedLen: b.readUInt32LE(20),
    verifiedInsns: b.readUInt32LE(216),
    runTimeNs: b.readBigUInt64LE(192),
    runCnt: b.readBigUInt64LE(200),
  };
}

/**
 * The program's full name from its BTF (the kernel cuts `name` at 15 characters): the FUNC type
 * of its first func_info record. Undefined without BTF.
 */
export function progFullName(fd: number): string | undefined {
  const b = rawInfo(fd, PROG_INFO_SIZE);
  const btfId = b.readUInt32LE(128);
  if (!btfId || !b.readUInt32LE(144)) return undefined;
  const rec = new Uint32Array(2);
  rawInfo(fd, PROG_INFO_SIZE, (p) => {
    p.writeUInt32LE(8, 132); // func_info_rec_size
    p.writeBigUInt64LE(addressOf(new Uint8Array(rec.buffer)), 136);
    p.writeUInt32LE(1, 144); // nr_func_info
  });
  const btf = lib().btf__load_from_kernel_by_id(btfId) as bigint | null;
  if (btf === null) return undefined;
  try {
    const t = lib().btf__type_by_id(btf, rec[1]!) as bigint | null;
    if (t === null) return undefined;
    const nameOff = new DataView(viewOf(t, 4).slice().buffer).getUint32(0, true);
    return (lib().btf__name_by_offset(btf, nameOff) as string | null) ?? undefined;
  } finally {
    lib().btf__free(btf);
  }
}

export function mapInfo(fd: number): MapInfo {
  const b = rawInfo(fd, MAP_INFO_SIZE);
  return {
    type: mapTypeName(b.readUInt32LE(0)),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    name: cstr(b, 24, 16),
    btfId: b.readUInt32LE(64),
    btfKeyTypeId: b.readUInt32LE(68),
    btfValueTypeId: b.readUInt32LE(72),
  };
}

const PERF_EVENT_KIND: Record<number, string> = { 1: 'uprobe', 2: 'uretprobe', 3: 'kprobe', 4: 'kretprobe', 5: 'tracepoint', 6: 'event' };

export function linkInfo(fd: number): LinkInfo {
  // Names (tracepoints, kernel functions) come back through a buffer we lend the kernel.
  const name = Buffer.alloc(256);
  let b = rawInfo(fd, LINK_INFO_SIZE);
  const type = linkTypeName(b.readUInt32LE(0));
  const lend = (ptrOff: number, lenOff: number) => {
    b = rawInfo(fd, LINK_INFO_SIZE, (p) => {
      p.writeBigUInt64LE(addressOf(name), ptrOff);
      p.writeUInt32LE(name.length, lenOff);
    });
    return cstr(name, 0, name.length);
  };
  const info: LinkInfo = { type, id: b.readUInt32LE(4), progId: b.readUInt32LE(8), target: type };
  // The union after prog_id starts at offset 16 (8-byte aligned).
  if (type === 'xdp') info.target = `ifindex:${b.readUInt32LE(16)}`;
  else if (type === 'cgroup') {
    info.target = `cgroup:${b.readBigUInt64LE(16)}`;
    info.attachType = attachTypeName(b.readUInt32LE(24));
  } else if (type === 'netns') {
    info.target = `netns:${b.readUInt32LE(16)}`;
    info.attachType = attachTypeName(b.readUInt32LE(20));
  } else if (type === 'tcx' || type === 'netkit') {
    info.target = `ifindex:${b.readUInt32LE(16)}`;
    info.attachType = attachTypeName(b.readUInt32LE(20));
  } else if (type === 'sockmap') {
    info.target = `map:${b.readUInt32LE(16)}`;
    info.attachType = attachTypeName(b.readUInt32LE(20));
  } else if (type === 'tracing') {
    info.attachType = attachTypeName(b.readUInt32LE(16));
    info.target = `btf:${b.readUInt32LE(20)}/${b.readUInt32LE(24)}`;
  } else if (type === 'raw_tracepoint') {
    info.target = `raw_tp:${lend(16, 24)}`;
  } else if (type === 'perf_event') {
    const kind = PERF_EVENT_KIND[b.readUInt32LE(16)] ?? 'perf_event';
    // tracepoint: tp_name@24 name_len@32; kprobe/uprobe: func_name/file_name@24 name_len@32
    const n = kind === 'event' ? '' : lend(24, 32);
    info.target = n ? `${kind}:${n}` : kind;
  }
  return info;
}

/** Which kind of BPF object an fd refers to, from /proc/self/fdinfo (no syscall needed). */
export function fdKind(fd: number): 'prog' | 'map' | 'link' | 'btf' | 'other' {
  let text: string;
  try {
    text = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch {
    return 'other';
  }
  if (/^map_type:/m.test(text)) return 'map';
  if (/^link_type:/m.test(text)) return 'link';
  if (/^prog_type:/m.test(text)) return 'prog';
  return 'other';
}

export function closeFd(fd: number): void {
  if (fd >= 0) c().close(fd);
}

const F_DUPFD_CLOEXEC = 1030;

/**
 * A duplicate of `fd`, close-on-exec like every fd the kernel's bpf() returns: a plain dup()
 * would be inherited by every process started afterwards (a supervisor's function instances),
 * which would then keep programs and maps alive after they were unloaded.
 */
export function dupFd(fd: number, what: string): number {
  const r = c().fcntl(fd, F_DUPFD_CLOEXEC, 'int', 3) as number;
  if (r < 0) throw loaderError(`dup(${what})`, lastErrno());
  return r;
}

const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;

/**
 * A duplicate, in this process, of file descriptor `fd` of process `pid` (pidfd_getfd, kernel
 * 5.6+; needs ptrace rights over it, which root has). The caller closes it. LoaderError E_NOENT
 * for a process or fd that does not exist.
 */
export function fdOfProcess(pid: number, fd: number): number {
  const pidfd = Number(c().syscall3(SYS_PIDFD_OPEN, pid, 0, 0));
  if (pidfd < 0) throw loaderError(`pidfd_open(${pid})`, lastErrno(), { hint: lastErrno() === 3 ? 'no such process' : undefined });
  try {
    const got = Number(c().syscall3(SYS_PIDFD_GETFD, pidfd, fd, 0));
    if (got < 0) {
      const errno = lastErrno();
      throw loaderError(`take fd ${fd} of process ${pid}`, errno === 9 ? 2 : errno, { hint: errno === 9 ? `process ${pid} has no fd ${fd}` : undefined });
    }
    return got;
  } finally {
    closeFd(pidfd);
  }
}
