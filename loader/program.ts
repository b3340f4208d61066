/**
 * BpfProgram: one loaded, verified program, held by fd. Attach calls return an Attachment the
 * caller must detach or close; the program itself can be closed once attached (the attachment
 * keeps the kernel's reference).
 */
import { attachCgroup } from './attach-cgroup.ts';
import { attachSockMap, attachSockMapLink, type SockMapAttachKind, type SockMapAttachment } from './attach-sockmap.ts';
import { attachTc, type TcDirection } from './attach-tc.ts';
import { attachKprobe, attachRawTracepoint, attachTracepoint, attachTracing } from './attach-trace.ts';
import { attachXdp, type XdpAttachment, type XdpAttachOptions } from './attach-xdp.ts';
import { check, loaderError } from './errors.ts';
import { closeFd, dupFd, progInfo } from './info.ts';
import { addressOf, lib } from './libbpf.ts';
import type { BpfLink } from './link.ts';
import type { BpfMap } from './map.ts';
import { openPinnedFd, pinFd } from './pin.ts';

// struct bpf_test_run_opts (x86-64), 80 bytes.
const TR = { size: 80, dataIn: 8, dataOut: 16, sizeIn: 24, sizeOut: 28, retval: 56, repeat: 60, duration: 64 } as const;

export interface TestRunResult {
  /** The program's return value (XDP_PASS = 2, ...). */
  retval: number;
  /** Average time per repetition as measured by the kernel. */
  durationNs: number;
  /** The packet as the program left it. */
  data: Uint8Array;
}

export class BpfProgram {
  readonly fd: number;
  readonly name: string;
  readonly type: string;
  readonly id: number;
  readonly tag: string;
  /** The attach type libbpf derived from the ELF section (e.g. 'cgroup_sock_ops'), when known. */
  readonly expectedAttachType: string | undefined;
  private closed = false;

  /** Wrap an fd the caller hands over; `name` overrides the kernel's 15-character name. */
  constructor(fd: number, opts: { name?: string; expectedAttachType?: string } = {}) {
    this.fd = fd;
    const info = progInfo(fd);
    this.name = opts.name ?? info.name;
    this.type = info.type;
    this.id = info.id;
    this.tag = info.tag;
    this.expectedAttachType = opts.expectedAttachType;
  }

  /** Open a pinned program. LoaderError E_NOENT when nothing is pinned there. */
  static openPinned(path: string): BpfProgram {
    return new BpfProgram(openPinnedFd(path, 'prog'));
  }

  /** Adopt `fd` (the program then owns and closes it); with `dup`, a duplicate of it. */
  static fromFd(fd: number, opts: { dup?: boolean; name?: string } = {}): BpfProgram {
    return new BpfProgram(opts.dup ? dupFd(fd, `program fd ${fd}`) : fd, { name: opts.name });
  }

  /** Same as openPinned: the constructor pattern shared with BpfMap and BpfLink. */
  static fromPin(path: string): BpfProgram {
    return BpfProgram.openPinned(path);
  }

  /** Open a program by kernel id. LoaderError E_NOENT when there is none. */
  static fromId(id: number): BpfProgram {
    return new BpfProgram(check(lib().bpf_prog_get_fd_by_id(id), `open program id ${id}`));
  }

  pin(path: string): void {
    pinFd(this.fd, path, `program '${this.name}'`);
  }

  /** sk_msg / sk_skb on a sockmap or sockhash (attach before inserting sockets). */
  attachSockMap(map: BpfMap, kind: SockMapAttachKind): SockMapAttachment {
    return attachSockMap(this, map, kind);
  }

  /** A cgroup v2 link; attachType defaults from the program ('sock_ops' -> 'cgroup_sock_ops'). */
  attachCgroup(cgroupPath: string, attachType?: string): BpfLink {
    return attachCgroup(this, cgroupPath, attachType);
  }

  /** sk_msg / sk_skb on a sockmap or sockhash as a bpf_link (pinnable; kernel 6.10+). */
  attachSockMapLink(map: BpfMap, kind: SockMapAttachKind): BpfLink {
    return attachSockMapLink(this, map, kind);
  }

  /** tc (sched_cls) on a device's ingress or egress, as a tcx link. */
  attachTc(ifname: string | number, direction: TcDirection = 'ingress', opts: { netns?: string } = {}): BpfLink {
    return attachTc(this, ifname, direction, opts);
  }

  /** A tracepoint program on `category/name`, as a perf-event link. */
  attachTracepoint(category: string, name: string): BpfLink {
    return attachTracepoint(this, category, name);
  }

  /** A kprobe program on kernel function `func` (kretprobe with `retprobe`), as a perf-event link. */
  attachKprobe(func: string, opts: { retprobe?: boolean } = {}): BpfLink {
    return attachKprobe(this, func, opts);
  }

  /** A raw tracepoint program on `name` (e.g. 'sys_enter'). */
  attachRawTracepoint(name: string): BpfLink {
    return attachRawTracepoint(this, name);
  }

  /** fentry/fexit/fmod_ret/tp_btf/lsm programs, on the target their section named at load. */
  attachTracing(): BpfLink {
    return attachTracing(this);
  }

  /** XDP via a link; `attachment.mode` says which mode the kernel used. */
  attachXdp(ifname: string | number, opts?: XdpAttachOptions): XdpAttachment {
    return attachXdp(this, ifname, opts);
  }

  /**
   * Run the program on `data` in the kernel (BPF_PROG_TEST_RUN) `repeat` times. LoaderError
   * E_NOTSUPP for program types without test-run support, E_INVAL for a packet too short.
   */
  testRun(data: Uint8Array, opts: { repeat?: number; dataOutSize?: number } = {}): TestRunResult {
    const dataIn = Buffer.from(data);
    // XDP may grow the packet at the head or tail: leave room beyond the input.
    const dataOut = Buffer.alloc(opts.dataOutSize ?? data.length + 512);
    const o = Buffer.alloc(TR.size);
    o.writeBigUInt64LE(BigInt(TR.size), 0);
    o.writeBigUInt64LE(addressOf(dataIn), TR.dataIn);
    o.writeBigUInt64LE(addressOf(dataOut), TR.dataOut);
    o.writeUInt32LE(dataIn.length, TR.sizeIn);
    o.writeUInt32LE(dataOut.length, TR.sizeOut);
    o.writeInt32LE(opts.repeat ?? 1, TR.repeat);
    const ret = lib().bpf_prog_test_run_opts(this.fd, o) as number;
    if (ret < 0) throw loaderError(`test run of '${this.name}'`, -ret);
    return {
      retval: o.readUInt32LE(TR.retval),
      durationNs: o.readUInt32LE(TR.duration),
      data: dataOut.subarray(0, Math.min(o.readUInt32LE(TR.sizeOut), dataOut.length)),
    };
  }

  /** Idempotent. The kernel keeps the program while something is attached or pinned. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}
