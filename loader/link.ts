/**
 * BpfLink: an attachment owned by an fd (bpf_link). Closing the last fd (with no pin) detaches
 * it; pinning keeps it attached after the process exits; update() swaps the program atomically,
 * so there is never a moment with no program attached.
 */
import { check } from './errors.ts';
import { closeFd, dupFd, type LinkInfo, linkInfo } from './info.ts';
import { lib } from './libbpf.ts';
import { openPinnedFd, pinFd } from './pin.ts';

/** Anything an attach call returns. */
export interface Attachment {
  /** Detach now, even if pinned, and release the fd. Idempotent. */
  detach(): void;
  /** Release what this process holds: a link stays attached only if pinned. Idempotent. */
  close(): void;
}

export class BpfLink implements Attachment {
  readonly fd: number;
  readonly id: number;
  readonly type: string;
  protected closed = false;

  /** Wrap an fd the caller hands over. */
  constructor(fd: number) {
    this.fd = fd;
    const info = linkInfo(fd);
    this.id = info.id;
    this.type = info.type;
  }

  /** Open a pinned link. LoaderError E_NOENT when nothing is pinned there. */
  static openPinned(path: string): BpfLink {
    return new BpfLink(openPinnedFd(path, 'link'));
  }

  /** Adopt `fd` (the link then owns and closes it); with `dup`, a duplicate of it. */
  static fromFd(fd: number, opts: { dup?: boolean } = {}): BpfLink {
    return new BpfLink(opts.dup ? dupFd(fd, `link fd ${fd}`) : fd);
  }

  /** Same as openPinned: the constructor pattern shared with BpfMap and BpfProgram. */
  static fromPin(path: string): BpfLink {
    return BpfLink.openPinned(path);
  }

  /** Open a link by kernel id. LoaderError E_NOENT when there is none. */
  static fromId(id: number): BpfLink {
    return new BpfLink(check(lib().bpf_link_get_fd_by_id(id), `open link id ${id}`));
  }

  info(): LinkInfo {
    return linkInfo(this.fd);
  }

  /** Pin on bpffs: the attachment then outlives this process until the pin is removed. */
  pin(path: string): void {
    pinFd(this.fd, path, `link ${this.id}`);
  }

  /** Replace the attached program atomically (bpf_link_update). LoaderError E_INVAL if the program's type does not fit. */
  update(prog: { fd: number; name?: string }): void {
    check(lib().bpf_link_update(this.fd, prog.fd, null), `update link ${this.id} to program ${prog.name ?? prog.fd}`);
  }

  detach(): void {
    if (this.closed) return;
    check(lib().bpf_link_detach(this.fd), `detach link ${this.id}`);
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}
