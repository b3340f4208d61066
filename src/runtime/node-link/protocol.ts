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
import type { ByteBatch } from './batch.ts';

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

/** Fills the 5-byte head of a frame whose body follows it in `frameBytes`. */
export function putFrameHead(frameBytes: Buffer, type: number): void {
  frameBytes.writeUInt32LE(frameBytes.length - 4, 0);
  frameBytes[4] = type;
}

/** Bytes of one record with a route name of `routeLen` bytes and `payloadLen` of payload. */
export function recordSize(routeLen: number, payloadLen: number): number {
  return DESC_SIZE + 1 + 4 + 1 + routeLen + 4 + payloadLen;
}

/**
 * Appends one record to a DATA batch: the descriptor at `descAt` of `desc`, the route's name as
 * bytes (at most 255), the payload.
 */
export function appendRecord(batch: ByteBatch, desc: Buffer, descAt: number, toGateway: boolean, token: number, route: Buffer, payload: Uint8Array): void {
  const size = recordSize(route.length, payload.length);
  const b = batch.room(size);
  let at = batch.offset;
  desc.copy(b, at, descAt, descAt + DESC_SIZE);
  at += DESC_SIZE;
  b[at++] = toGateway ? 1 : 0;
  b.writeUInt32LE(token >>> 0, at);
  at += 4;
  b[at++] = route.length;
  route.copy(b, at);
  at += route.length;
  b.writeUInt32LE(payload.length, at);
  b.set(payload, at + 4);
  batch.commit(size);
  batch.count++;
}

/**
 * Walks the records of a DATA body in place (no object or copy per record): after `next()`
 * returned true, the fields describe the current record as offsets into the body.
 */
export class RecordCursor {
  descAt = 0;
  toGateway = false;
  token = 0;
  routeAt = 0;
  routeLen = 0;
  payloadAt = 0;
  payloadLen = 0;
  private body: Buffer = Buffer.alloc(0);
  private at = 0;

  reset(body: Buffer): void {
    this.body = body;
    this.at = 0;
  }

  /** The next record: true; false after the last; null when the body is malformed (the connection is then closed). */
  next(): boolean | null {
    const body = this.body;
    let at = this.at;
    if (at >= body.length) return false;
    if (body.length - at < DESC_SIZE + 6) return null;
    this.descAt = at;
    at += DESC_SIZE;
    this.toGateway = body[at++] === 1;
    this.token = body.readUInt32LE(at);
    at += 4;
    const rl = body[at++]!;
    if (body.length - at < rl + 4) return null;
    this.routeAt = at;
    this.routeLen = rl;
    at += rl;
    const pl = body.readUInt32LE(at);
    at += 4;
    if (body.length - at < pl) return null;
    this.payloadAt = at;
    this.payloadLen = pl;
    this.at = at + pl;
    return true;
  }

  route(): string {
    return this.body.toString('utf8', this.routeAt, this.routeAt + this.routeLen);
  }

  payload(): Buffer {
    return this.body.subarray(this.payloadAt, this.payloadAt + this.payloadLen);
  }
}

/** Writes a frame unless the socket is gone; never throws (a failed peer is handled by 'close'). */
export function send(sock: net.Socket, bytes: Buffer): void {
  if (!sock.destroyed && sock.writable) sock.write(bytes);
}
