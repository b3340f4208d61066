/**
 * The descriptor: what one hop of a function chain hands the next (docs/internals.md). 24 bytes,
 * little-endian; the payload stays in the pool and is referenced by offset, never by pointer,
 * because every process maps the pool at its own address.
 */
import type { Infer } from './codec.ts';
import { cStruct } from './c-decl.ts';
import { u8, u16, u32 } from './ints.ts';
import { struct } from './struct.ts';

export const descriptor = struct('bpfctl_desc', {
  /** Route id: index in the `routes` map. */
  route: u16,
  /** The hop this descriptor goes to: 0..len-1 a function of the route, len the gateway. */
  hop: u8,
  /** DESC_FLAG_* bits. */
  flags: u8,
  /** Gateway instance that gets the reply. */
  gw_inst: u16,
  /** Application status (an HTTP status for errors); 0 = ok. */
  status: u16,
  /** Request id, chosen by the gateway. */
  req_id: u32,
  /** Byte offset of the buffer from the start of the pool mapping. */
  buf_off: u32,
  /** Bytes of payload in the buffer. */
  buf_len: u32,
  /** The buffer's generation when handed out: a stale descriptor is caught by comparing it. */
  buf_gen: u32,
});

export type Descriptor = Infer<typeof descriptor>;

/** The fixed wire size: sk_msg judges each descriptor with `bpf_msg_apply_bytes(msg, 24)`. */
export const DESC_SIZE = 24;
/** A handler failed: the rest of the route is skipped (the sender sets hop = len). */
export const DESC_FLAG_ERROR = 1;
/** The response lives in a new buffer, not the request's. */
export const DESC_FLAG_RESPONSE_NEW_BUF = 2;

/** Byte offsets of the descriptor's fields, for code that reads single fields in place. */
export const DESC_OFFSETS: Readonly<Record<keyof Descriptor, number>> = Object.freeze(
  Object.fromEntries(descriptor.fields.map((f) => [f.name, f.offset])) as Record<keyof Descriptor, number>,
);

/** `struct bpfctl_desc` for bpf/include and generated programs. */
export function descriptorCDecl(): string {
  return cStruct(descriptor);
}

if (descriptor.size !== DESC_SIZE) throw new Error(`descriptor schema is ${descriptor.size} bytes, the contract says ${DESC_SIZE}`);
