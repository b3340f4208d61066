/**
 * Incremental Internet checksum updates for TypeScript packet functions (RFC 1624, eqn. 3:
 * HC' = ~(~HC + ~m + m')), the TypeScript twin of packet_hdr.h's bpfctl_csum_replace2/4. A NAT
 * that rewrites an address or port fixes the IPv4 and L4 checksums with two of these instead of
 * summing the packet again. Values are 16-bit words as they appear in the frame (network order,
 * read big-endian here), and the checksum field is read and written in place. For a full
 * recomputation, Packet#fixChecksums does it in C.
 */

const rd16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;

function wr16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v & 0xff;
}

/** Ones' complement add of 16-bit values, folded. */
function add1c(a: number, b: number): number {
  const s = a + b;
  return (s & 0xffff) + (s >>> 16);
}

/**
 * The checksum at `checkAt` of `frame` after a 16-bit field changed from `from` to `to` (both as
 * the field reads big-endian). RangeError when the checksum field is not inside the frame.
 */
export function csumReplace16(frame: Uint8Array, checkAt: number, from: number, to: number): void {
  if (!Number.isInteger(checkAt) || checkAt < 0 || checkAt + 2 > frame.length) throw new RangeError(`checksum offset ${checkAt} is outside the ${frame.length}-byte frame`);
  const hc = rd16(frame, checkAt);
  const s = add1c(add1c(~hc & 0xffff, ~from & 0xffff), to & 0xffff);
  wr16(frame, checkAt, ~s & 0xffff);
}

/** csumReplace16 for a 32-bit field (an IPv4 address), `from` and `to` as it reads big-endian. */
export function csumReplace32(frame: Uint8Array, checkAt: number, from: number, to: number): void {
  if (!Number.isInteger(checkAt) || checkAt < 0 || checkAt + 2 > frame.length) throw new RangeError(`checksum offset ${checkAt} is outside the ${frame.length}-byte frame`);
  let s = ~rd16(frame, checkAt) & 0xffff;
  s = add1c(s, ~(from >>> 16) & 0xffff);
  s = add1c(s, ~from & 0xffff);
  s = add1c(s, (to >>> 16) & 0xffff);
  s = add1c(s, to & 0xffff);
  wr16(frame, checkAt, ~s & 0xffff);
}

/**
 * The UDP flavour over IPv4: a checksum of 0 means "none" and stays 0, and an update that comes
 * out as 0 is stored as 0xffff (RFC 768).
 */
export function udpCsumReplace16(frame: Uint8Array, checkAt: number, from: number, to: number): void {
  if (checkAt >= 0 && checkAt + 2 <= frame.length && rd16(frame, checkAt) === 0) return;
  csumReplace16(frame, checkAt, from, to);
  if (rd16(frame, checkAt) === 0) wr16(frame, checkAt, 0xffff);
}

/** udpCsumReplace16 for a 32-bit field. */
export function udpCsumReplace32(frame: Uint8Array, checkAt: number, from: number, to: number): void {
  if (checkAt >= 0 && checkAt + 2 <= frame.length && rd16(frame, checkAt) === 0) return;
  csumReplace32(frame, checkAt, from, to);
  if (rd16(frame, checkAt) === 0) wr16(frame, checkAt, 0xffff);
}

/** The Internet checksum of `bytes` (RFC 1071), as a value to store: for tests and slow paths. */
export function internetChecksum(bytes: Uint8Array, from = 0, to = bytes.length): number {
  let s = 0;
  let i = from;
  for (; i + 1 < to; i += 2) s += rd16(bytes, i);
  if (i < to) s += bytes[i]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}
