/**
 * The node-link wire protocol between two nodes of one policy (docs/multi-node.md): length-framed
 * messages over one persistent TCP connection per direction, opened by a mutual HMAC-SHA256
 * challenge-response with the policy's shared secret. Until a connection has proved the secret
 * nothing it sends is read as anything but the proof: a process that can reach the port but does
 * not hold the secret is cut off before it can name a buffer or a request.
 *
 * Versions. The first frame each side sends (the acceptor's CHALLENGE, the dialer's AUTH) starts
 * with HELLO_MAGIC and a u16 LE protocol version, in this version and every later one: that head
 * is the one layout that never changes, so two nodes of different versions can always tell each
 * other which version they speak and refuse cleanly instead of misreading a stream. The version is
 * also bound into every proof (the HMAC's domain string), so a proof of one version is no proof in
 * another. Version 1 is bpfctl 0.1's protocol, which had no version field: its CHALLENGE is a bare
 * 16-byte nonce, recognised as such.
 *
 * Secrets. A dialer proves every secret it accepts at the moment (the current one and, during a
 * rotation's grace period, the previous: at most MAX_PROOFS), the acceptor checks them against
 * every secret it accepts and proves back with the one that matched, so two nodes that learnt a
 * new secret at different moments still link.
 *
 * Channels (version 3). A node dials every peer twice: a control connection (pings, state) and a
 * data connection (DATA only, dialer to acceptor), each with its own handshake; the channel is in
 * the AUTH body and in its proof, so a data connection's proof is no proof for a control one. The
 * data connections are handed to the native data path (native/node-link.c) once authenticated.
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

/**
 * The protocol this build speaks. 1 was bpfctl 0.1's (no version field); 2 added the version head
 * and several proofs; 3 split each direction into a control and a data connection (the channel
 * byte in AUTH).
 */
export const PROTOCOL_VERSION = 3;
/** What a connection carries, told in its AUTH: pings and state, or DATA frames. */
export const CHANNEL_CONTROL = 0;
export const CHANNEL_DATA = 1;
export type Channel = typeof CHANNEL_CONTROL | typeof CHANNEL_DATA;
/** What the first frame body of every versioned node-link connection starts with, before the u16 version. */
export const HELLO_MAGIC = Buffer.from('bpnl');
/** Bytes of the version head: magic + u16 LE version. */
export const HELLO_HEAD = HELLO_MAGIC.length + 2;
/** Proofs a dialer sends at most: the current secret and the previous one during a rotation. */
export const MAX_PROOFS = 2;

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

function mac(secret: Buffer, version: number, policy: string, role: 'dial' | 'accept', a: Buffer, b: Buffer, name: string, channel: Channel): Buffer {
  const ch = channel === CHANNEL_DATA ? '\0data' : '';
  return createHmac('sha256', secret).update(`bpfctl-node-link-v${version}\0${policy}\0${role}${ch}\0`).update(a).update(b).update(name).digest();
}

export const newNonce = (): Buffer => randomBytes(NONCE);

/** The version head every first frame body starts with. */
export function helloHead(version = PROTOCOL_VERSION): Buffer {
  const b = Buffer.alloc(HELLO_HEAD);
  HELLO_MAGIC.copy(b, 0);
  b.writeUInt16LE(version, HELLO_MAGIC.length);
  return b;
}

/**
 * The version a peer's first frame announces: the number in its head; 1 for a bare 16-byte
 * CHALLENGE (bpfctl 0.1, before versions); null when it is neither (not a node-link, or garbage).
 */
export function announcedVersion(type: number, body: Buffer): number | null {
  if (body.length >= HELLO_HEAD && body.subarray(0, HELLO_MAGIC.length).equals(HELLO_MAGIC)) return body.readUInt16LE(HELLO_MAGIC.length);
  if (type === T_CHALLENGE && body.length === NONCE) return 1;
  return null;
}

/** The acceptor's first frame body: the version head and its nonce. */
export function challengeBody(nonce: Buffer, version = PROTOCOL_VERSION): Buffer {
  return Buffer.concat([helloHead(version), nonce]);
}

/** The nonce of a CHALLENGE of this node's version, else null (announcedVersion says which it is). */
export function parseChallenge(body: Buffer): Buffer | null {
  if (body.length !== HELLO_HEAD + NONCE || announcedVersion(T_CHALLENGE, body) !== PROTOCOL_VERSION) return null;
  return Buffer.from(body.subarray(HELLO_HEAD));
}

/**
 * The dialer's answer to the acceptor's challenge: the version head, its nonce, the channel, one
 * proof per secret it accepts (the current one first), its name.
 */
export function authBody(secrets: readonly Buffer[], policy: string, challenge: Buffer, nonce: Buffer, name: string, version = PROTOCOL_VERSION, channel: Channel = CHANNEL_CONTROL): Buffer {
  const keys = secrets.slice(0, MAX_PROOFS);
  return Buffer.concat([helloHead(version), nonce, Buffer.from([channel, keys.length]), ...keys.map((k) => mac(k, version, policy, 'dial', challenge, nonce, name, channel)), Buffer.from(name)]);
}

/**
 * The dialer's name, nonce and the secret it proved (which the acceptor proves back with) when one
 * of its proofs holds for one of `secrets` (tried in order: the current one first), else null.
 */
export function checkAuth(secrets: readonly Buffer[], policy: string, challenge: Buffer, body: Buffer): { name: string; nonce: Buffer; secret: Buffer; index: number; channel: Channel } | null {
  if (body.length < HELLO_HEAD + NONCE + 2 || announcedVersion(T_AUTH, body) !== PROTOCOL_VERSION) return null;
  const nonce = body.subarray(HELLO_HEAD, HELLO_HEAD + NONCE);
  const channel = body[HELLO_HEAD + NONCE]!;
  if (channel !== CHANNEL_CONTROL && channel !== CHANNEL_DATA) return null;
  const count = body[HELLO_HEAD + NONCE + 1]!;
  const proofsAt = HELLO_HEAD + NONCE + 2;
  const nameAt = proofsAt + count * MAC;
  if (count < 1 || count > MAX_PROOFS || body.length <= nameAt || body.length > nameAt + 253) return null;
  const name = body.subarray(nameAt).toString();
  for (const [index, secret] of secrets.entries()) {
    const want = mac(secret, PROTOCOL_VERSION, policy, 'dial', challenge, nonce, name, channel);
    for (let i = 0; i < count; i++) {
      if (timingSafeEqual(want, body.subarray(proofsAt + i * MAC, proofsAt + (i + 1) * MAC))) return { name, nonce: Buffer.from(nonce), secret, index, channel };
    }
  }
  return null;
}

/** The acceptor's proof back (the dialer must not send requests to an impostor either), with the secret the dialer proved. */
export function authOkBody(secret: Buffer, policy: string, challenge: Buffer, nonce: Buffer, name: string, channel: Channel = CHANNEL_CONTROL): Buffer {
  return Buffer.concat([mac(secret, PROTOCOL_VERSION, policy, 'accept', nonce, challenge, name, channel), Buffer.from(name)]);
}

/** The acceptor's name when its proof holds for one of `secrets`, else null. */
export function checkAuthOk(secrets: readonly Buffer[], policy: string, challenge: Buffer, nonce: Buffer, body: Buffer, channel: Channel = CHANNEL_CONTROL): string | null {
  if (body.length <= MAC) return null;
  const name = body.subarray(MAC).toString();
  for (const secret of secrets) if (timingSafeEqual(mac(secret, PROTOCOL_VERSION, policy, 'accept', nonce, challenge, name, channel), body.subarray(0, MAC))) return name;
  return null;
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
