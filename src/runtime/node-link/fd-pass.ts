/**
 * Hands a socket to another process: sendmsg(2) with SCM_RIGHTS over a Unix stream socket (the
 * native data path's control socket). Node has no API for it outside child_process IPC with Node
 * children, so libc is reached through koffi, as the pool does for mmap.
 */
import koffi from 'koffi';

interface Libc {
  sendmsg(fd: number, msg: unknown, flags: number): number | bigint;
}

let libc: Libc | undefined;
function c(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    const iovec = koffi.struct('bpfctl_nl_iovec', { base: 'void *', len: 'size_t' });
    koffi.struct('bpfctl_nl_msghdr', { name: 'void *', namelen: 'uint32', iov: koffi.pointer(iovec), iovlen: 'size_t', control: 'void *', controllen: 'size_t', flags: 'int' });
    libc = { sendmsg: lib.func('intptr_t sendmsg(int fd, const bpfctl_nl_msghdr *msg, int flags)') } as Libc;
  }
  return libc;
}

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
/** CMSG_LEN(sizeof(int)) and CMSG_SPACE(sizeof(int)) on 64-bit Linux. */
const CMSG_LEN_1 = 20;
const CMSG_SPACE_1 = 24;
const MSG_NOSIGNAL = 0x4000;

export class FdPassError extends Error {}

/**
 * Writes `bytes` on the Unix socket `via` with `fd` attached (the receiver gets its own
 * descriptor of the same open file). All of `bytes` must fit in one write (a short control line).
 * @throws FdPassError with errno's name when sendmsg fails or writes only part.
 */
export function sendWithFd(via: number, bytes: Buffer, fd: number): void {
  const control = Buffer.alloc(CMSG_SPACE_1);
  control.writeBigUInt64LE(BigInt(CMSG_LEN_1), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  control.writeInt32LE(fd, 16);
  const n = Number(c().sendmsg(via, { name: null, namelen: 0, iov: [{ base: bytes, len: bytes.length }], iovlen: 1, control, controllen: CMSG_SPACE_1, flags: 0 }, MSG_NOSIGNAL));
  if (n !== bytes.length) throw new FdPassError(n < 0 ? `sendmsg: errno ${koffi.errno()}` : `sendmsg wrote ${n} of ${bytes.length} bytes`);
}
