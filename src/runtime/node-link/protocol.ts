/**
 * The node-link wire protocol between two nodes of one policy (docs/multi-node.md): length-framed
 * messages over one persistent TCP connection per direction, opened by a mutual HMAC-SHA256
 * challenge-response with the policy's shared secret. Until a connection has proved the secret
 * nothing it sends is read as anything but the proof: a process that can reach the port but does
 * not hold the secret is cut off before it can name a buffer or a request.
 *
 * Frame: u32 LE length of what follows, u8 type, body. A DATA body is a run of records, one per
 * descriptor crossing: the descriptor as the sender's chain had it (24 bytes), u8 flags (bit 0:
 * bound for the gateway), u32 token (which forward of the request it answers), u8 length + the
 * route's name (slot numbers differ between nodes; names do not), u32 length + the payload.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type net from 'node:net';
import { DESC_SIZE } from '../../schema/descriptor.ts';

export const T_CHALLENGE = 1;
export const T_AUTH = 2;
export const T_AUTH_OK = 3;
export const T_STATE = 4;
export const T_DATA = 5;
export const T_PING = 6;
export const T_PONG = 7;

/** Larger frames are refused (a record holds at most one pool buffer; batches stay well below). */
export const MAX_FRAME = 16 << 20;
export const NONCE = 16;
const MAC = 32;

/** What a peer tells about itself once authenticated (and again whenever it changes). */
export interface PeerState {
  node: string;
  labels: Record<string, string>;
  /** Its gateway instance ids: replies for them go to it. */
  gw: number[];
  /** Functions it runs instances of. */
  hosts: string[];
  /** Functions it sends part of its own load to other nodes for now: no node spills those to it. */
  spill?: string[];
}

export function frame(type: number, body: Uint8Array = Buffer.alloc(0)): Buffer {
  const b = Buffer.allocUnsafe(5 + body.length);
  b.writeUInt32LE(1 + body.length, 0);
  b[4] = type;
  b.set(body, 5);
  return b;
}

function mac(secret: Buffer, policy: string, role: 'dial' | 'accept', a: Buffer, b: Buffer, name: string): Buffer {
  return createHmac('sha256', secret).update(`bpfctl-node-link-v1\0${policy}\0${role}\0`).update(a).update(b).update(name).digest();
}

export const newNonce = (): Buffer => randomBytes(NONCE);

/** The dialer's answer to the acceptor's challenge: its nonce, the proof, its name. */
export function authBody(secret: Buffer, policy: string, challenge: Buffer, nonce: Buffer, name: string): Buffer {
  return Buffer.concat([nonce, mac(secret, policy, 'dial', challenge, nonce, name), Buffer.from(name)]);
}

/** The dialer's name when its proof holds, else null. */
export function checkAuth(secret: Buffer, policy: string, challenge: Buffer, body: Buffer): { name: string; nonce: Buffer } | null {
  if (body.length <= NONCE + MAC || body.length > NONCE + MAC + 253) return null;
  const nonce = body.subarray(0, NONCE);
  const name = body.subarray(NONCE + MAC).toString();
  const want = mac(secret, policy, 'dial', challenge, nonce, name);
  return timingSafeEqual(want, body.subarray(NONCE, NONCE + MAC)) ? { name, nonce: Buffer.from(nonce) } : null;
}

/** The acceptor's proof back (the dialer must not send requests to an impostor either). */
export function authOkBody(secret: Buffer, policy: string, challenge: Buffer, nonce: Buffer, name: string): Buffer {
  return Buffer.concat([mac(secret, policy, 'accept', nonce, challenge, name), Buffer.from(name)]);
}

export function checkAuthOk(secret: Buffer, policy: string, challenge: Buffer, nonce: Buffer, body: Buffer): string | null {
  if (body.length <= MAC) return null;
  const name = body.subarray(MAC).toString();
  const want = mac(secret, policy, 'accept', nonce, challenge, name);
  return timingSafeEqual(want, body.subarray(0, MAC)) ? name : null;
}

/**
 * Cuts a socket's bytes into frames. Returns false (and the caller closes the connection) on a
 * frame that is empty or larger than MAX_FRAME.
 */
export class FrameParser {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (type: number, body: Buffer) => void) {}

  push(chunk: Buffer): boolean {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let at = 0;
    while (this.buf.length - at >= 4) {
      const len = this.buf.readUInt32LE(at);
      if (len < 1 || len > MAX_FRAME) return false;
      if (this.buf.length - at - 4 < len) break;
      this.onFrame(this.buf[at + 4]!, this.buf.subarray(at + 5, at + 4 + len));
      at += 4 + len;
    }
    // A copy of the tail: the chunk it points into may be reused.
    this.buf = at === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(at));
    return true;
  }
}

/** One descriptor crossing, as a DATA record carries it. */
export interface WireRecord {
  /** The descriptor bytes (24). */
  desc: Buffer;
  toGateway: boolean;
  token: number;
  route: string;
  payload: Uint8Array;
}

export function recordSize(route: string, payloadLen: number): number {
  return DESC_SIZE + 1 + 4 + 1 + Buffer.byteLength(route) + 4 + payloadLen;
}

/** Writes one record at `at` of `b` (recordSize bytes must be there); returns the next offset. */
export function putRecord(b: Buffer, at: number, desc: Uint8Array, toGateway: boolean, token: number, route: string, payload: Uint8Array): number {
  b.set(desc.subarray(0, DESC_SIZE), at);
  at += DESC_SIZE;
  b[at++] = toGateway ? 1 : 0;
  b.writeUInt32LE(token >>> 0, at);
  at += 4;
  const n = b.write(route, at + 1);
  b[at] = n;
  at += 1 + n;
  b.writeUInt32LE(payload.length, at);
  at += 4;
  b.set(payload, at);
  return at + payload.length;
}

/** The records of a DATA body; null when it is malformed (the connection is then closed). */
export function readRecords(body: Buffer): WireRecord[] | null {
  const out: WireRecord[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < DESC_SIZE + 6) return null;
    const desc = body.subarray(at, at + DESC_SIZE);
    at += DESC_SIZE;
    const toGateway = body[at++] === 1;
    const token = body.readUInt32LE(at);
    at += 4;
    const rl = body[at++]!;
    if (body.length - at < rl + 4) return null;
    const route = body.toString('utf8', at, at + rl);
    at += rl;
    const pl = body.readUInt32LE(at);
    at += 4;
    if (body.length - at < pl) return null;
    out.push({ desc, toGateway, token, route, payload: body.subarray(at, at + pl) });
    at += pl;
  }
  return out;
}

/** Writes a frame unless the socket is gone; never throws (a failed peer is handled by 'close'). */
export function send(sock: net.Socket, bytes: Buffer): void {
  if (!sock.destroyed && sock.writable) sock.write(bytes);
}
