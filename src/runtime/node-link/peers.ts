/**
 * The node-link's connections to the other nodes. Every node dials every peer (that connection
 * carries this node's descriptors to it) and accepts each peer's dial (which carries the peer's
 * descriptors here, and the peer's state and heartbeat answers back). Both ends prove the
 * policy's secret before anything else is read (protocol.ts).
 *
 * A node of another protocol version is refused both ways with one log line per peer naming both
 * versions, counted (`wrongVersion`), and shown as the reason it is not up; the dialer tells its
 * version before closing, so the other node can say the same.
 *
 * A peer is up while its dialled connection is authenticated and answers pings: a peer whose
 * agent dies closes its sockets (seen at once); one whose namespace or link vanishes stops
 * answering, and is declared down after DEAD_MS of silence rather than after TCP's minutes of
 * retransmissions.
 *
 * Each direction has two connections (protocol 3): the control one above, and a data connection,
 * dialled once the control one is authenticated, with its own handshake, carrying DATA frames only
 * (dialer to acceptor). Once authenticated, a data connection is handed to the node-link
 * (`onDataChannel`), which owns it from then on; a peer is up once its state came and its data
 * connection is linked. Losing either takes the other down with it, and both are dialled again.
 */
import net from 'node:net';
import {
  announcedVersion,
  authBody,
  CHANNEL_DATA,
  authOkBody,
  challengeBody,
  checkAuth,
  checkAuthOk,
  FrameParser,
  frame,
  helloHead,
  newNonce,
  PROTOCOL_VERSION,
  type PeerState,
  parseChallenge,
  send,
  T_AUTH,
  T_AUTH_OK,
  T_CHALLENGE,
  T_PING,
  T_PONG,
  T_STATE,
} from './protocol.ts';
import { cut } from '../socket-cut.ts';
import type { SecretRing } from './secrets.ts';

export interface PeerAddress {
  name: string;
  host: string;
  port: number;
}

export interface PeersOptions {
  self: string;
  policy: string;
  /** The secrets accepted for new handshakes (current first), read at each handshake: a rotation applies to the next one. */
  secrets: Pick<SecretRing, 'keys' | 'isCurrent'>;
  listen: { host: string; port: number };
  peers: PeerAddress[];
  /** A peer came up (authenticated, its state known) or its state changed. */
  onState(peer: string, state: PeerState): void;
  /** A peer went down (closed, silent, refused). */
  onDown(peer: string): void;
  /**
   * An authenticated data connection: 'out' is the one this node dialled (it sends DATA on it),
   * 'in' one the peer dialled (DATA arrives on it). Paused, nothing read past its handshake; the
   * callee owns it from now on (and tells `dataLost` when an 'out' one fails).
   */
  onDataChannel(peer: string, dir: 'out' | 'in', sock: net.Socket): void;
  log(line: string): void;
}

const PING_MS = 200;
/** Silence after which a peer is down: a few missed pings, well under the gateway's deadline. */
export const DEAD_MS = 1000;
const AUTH_MS = 2000;
const BACKOFF_MIN = 100;
const BACKOFF_MAX = 1000;

interface Outbound {
  addr: PeerAddress;
  sock: net.Socket | null;
  up: boolean;
  /** Proved the secret (pings may go out; it is up once its state came too). */
  authed: boolean;
  state: PeerState | null;
  /** Why the last dial did not link (another protocol version, a failed proof), shown while it is down. */
  problem: string | null;
  lastHeard: number;
  backoff: number;
  timer: NodeJS.Timeout | null;
  /** The data connection being dialled or handed over (until the control connection closes). */
  data: net.Socket | null;
  /** The data connection is authenticated and handed to the node-link. */
  dataReady: boolean;
}

export class Peers {
  private readonly out = new Map<string, Outbound>();
  private readonly inbound = new Set<{ sock: net.Socket; peer: string | null; lastHeard: number }>();
  private server: net.Server | null = null;
  private tick: NodeJS.Timeout | null = null;
  private closed = false;
  private myState: PeerState | null = null;
  /**
   * refused: inbound connections without a valid proof; wrongVersion: connections refused either
   * way for another protocol version; previousSecret: handshakes that held only with the previous
   * secret (a peer that has not seen a rotation yet).
   */
  readonly counters = { refused: 0, wrongVersion: 0, previousSecret: 0, authenticated: 0, downs: 0 };
  /** The last line logged per peer and kind: a peer that keeps failing the same way is logged once. */
  private readonly logged = new Map<string, string>();

  constructor(private readonly o: PeersOptions) {
    for (const p of o.peers) this.out.set(p.name, { addr: p, sock: null, up: false, authed: false, state: null, problem: null, lastHeard: 0, backoff: BACKOFF_MIN, timer: null, data: null, dataReady: false });
  }

  async start(): Promise<number> {
    const server = net.createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.listen.port, this.o.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.tick = setInterval(() => this.heartbeat(), PING_MS);
    for (const p of this.out.values()) this.dial(p);
    return (server.address() as net.AddressInfo).port;
  }

  /** Peers that are up, with their state. */
  up(): { name: string; state: PeerState }[] {
    return [...this.out.values()].filter((p) => p.up && p.state).map((p) => ({ name: p.addr.name, state: p.state! }));
  }

  status(): { name: string; address: string; up: boolean; state: PeerState | null; silentMs: number | null; problem: string | null }[] {
    const now = Date.now();
    return [...this.out.values()].map((p) => ({ name: p.addr.name, address: `${p.addr.host}:${p.addr.port}`, up: p.up, state: p.state, silentMs: p.up ? now - p.lastHeard : null, problem: p.up ? null : p.problem }));
  }

  /**
   * Logs a line unless the same thing (`what`: the line without its changing parts, such as a
   * source port) was the last logged for this key: a peer retrying every second is logged once.
   */
  private logOnce(key: string, line: string, what = line): void {
    if (this.logged.get(key) === what) return;
    this.logged.set(key, what);
    this.o.log(line);
  }

  /** The configured peer an address belongs to, for naming who an inbound connection is before it proved anything. */
  private peerAt(address: string | undefined): string | null {
    const a = (address ?? '').replace(/^::ffff:/, '');
    for (const p of this.out.values()) if (p.addr.host === a) return p.addr.name;
    return null;
  }

  /** Whether a peer is up now (authenticated, its state known, its data connection linked). */
  isUp(peer: string): boolean {
    const p = this.out.get(peer);
    return !!p?.up && !!p.sock && !p.sock.destroyed;
  }

  /** The data connection to a peer failed (its owner saw it): the control one goes too, and both are dialled again. */
  dataLost(peer: string): void {
    const p = this.out.get(peer);
    if (!p?.dataReady) return;
    this.o.log(`data connection to ${peer} lost`);
    cut(p.sock);
  }

  /** Up once the state came and the data connection is linked; dials the data connection when the control one is authenticated. */
  private maybeUp(p: Outbound): void {
    if (!p.state || p.up || this.closed) return;
    if (!p.dataReady) {
      if (!p.data) this.dialData(p);
      return;
    }
    p.up = true;
    p.backoff = BACKOFF_MIN;
    this.o.log(`peer ${p.addr.name} up (${p.addr.host}:${p.addr.port})`);
    this.o.onState(p.addr.name, p.state);
  }

  /** The data connection to a peer whose control connection is authenticated: the same handshake on the data channel. */
  private dialData(p: Outbound): void {
    const sock = net.connect({ host: p.addr.host, port: p.addr.port, noDelay: true });
    p.data = sock;
    const nonce = newNonce();
    let challenge: Buffer | null = null;
    let done = false;
    const fail = (): void => {
      clearTimeout(timer);
      if (done) return;
      done = true;
      cut(sock);
      // The control connection goes too: the peer is dialled again from the start.
      if (p.data === sock) cut(p.sock);
    };
    const timer = setTimeout(fail, AUTH_MS);
    const parser = new FrameParser((type, body) => {
      if (done || sock.destroyed) return;
      if (!challenge) {
        challenge = type === T_CHALLENGE ? parseChallenge(body) : null;
        if (!challenge) return fail();
        send(sock, frame(T_AUTH, authBody(this.o.secrets.keys(), this.o.policy, challenge, nonce, this.o.self, PROTOCOL_VERSION, CHANNEL_DATA)));
        return;
      }
      const name = type === T_AUTH_OK ? checkAuthOk(this.o.secrets.keys(), this.o.policy, challenge, nonce, body, CHANNEL_DATA) : null;
      if (name !== p.addr.name || p.data !== sock) return fail();
      done = true;
      clearTimeout(timer);
      sock.pause();
      sock.removeAllListeners('data');
      p.dataReady = true;
      this.o.onDataChannel(p.addr.name, 'out', sock);
      this.maybeUp(p);
    });
    sock.on('data', (c: Buffer) => {
      if (!parser.push(c)) fail();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (!done) fail();
    });
  }

  /** This node's state, told to every peer connected to it now and later. */
  setState(s: PeerState): void {
    const changed = JSON.stringify(s) !== JSON.stringify(this.myState);
    this.myState = s;
    if (!changed) return;
    const f = frame(T_STATE, Buffer.from(JSON.stringify(s)));
    for (const c of this.inbound) if (c.peer) send(c.sock, f);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.tick) clearInterval(this.tick);
    for (const p of this.out.values()) {
      if (p.timer) clearTimeout(p.timer);
      cut(p.sock);
      if (!p.dataReady) cut(p.data);
    }
    for (const c of this.inbound) cut(c.sock);
    const server = this.server;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  private heartbeat(): void {
    const now = Date.now();
    for (const p of this.out.values()) {
      if (!p.sock) continue;
      if (p.up && now - p.lastHeard > DEAD_MS) {
        this.o.log(`peer ${p.addr.name} silent for ${now - p.lastHeard} ms: down`);
        cut(p.sock);
        continue;
      }
      if (p.authed && now - p.lastHeard > DEAD_MS) {
        cut(p.sock);
        continue;
      }
      if (p.authed) send(p.sock, frame(T_PING));
    }
    for (const c of this.inbound) if (now - c.lastHeard > (c.peer ? DEAD_MS : AUTH_MS)) cut(c.sock);
  }

  private dial(p: Outbound): void {
    if (this.closed) return;
    const sock = net.connect({ host: p.addr.host, port: p.addr.port, noDelay: true });
    p.sock = sock;
    const nonce = newNonce();
    let challenge: Buffer | null = null;
    let proofSent = false;
    p.authed = false;
    const authTimer = setTimeout(() => cut(sock), AUTH_MS);
    const parser = new FrameParser((type, body) => {
      if (sock.destroyed) return;
      p.lastHeard = Date.now();
      if (!challenge) {
        const version = announcedVersion(type, body);
        if (type !== T_CHALLENGE || version === null) return void cut(sock);
        if (version !== PROTOCOL_VERSION) {
          this.counters.wrongVersion++;
          p.problem = `protocol ${version} (this node ${PROTOCOL_VERSION})`;
          this.logOnce(`dial ${p.addr.name}`, `peer ${p.addr.name} at ${p.addr.host}:${p.addr.port} speaks node-link protocol ${version}${version === 1 ? ' (bpfctl 0.1)' : ''}, this node speaks ${PROTOCOL_VERSION}: not linked (run the same bpfctl on every node; docs/multi-node.md)`);
          // Our version head alone, so that it can say the same on its side; then the connection ends.
          p.backoff = BACKOFF_MAX;
          return void sock.end(frame(T_AUTH, helloHead()));
        }
        challenge = parseChallenge(body);
        if (!challenge) return void cut(sock);
        send(sock, frame(T_AUTH, authBody(this.o.secrets.keys(), this.o.policy, challenge, nonce, this.o.self)));
        proofSent = true;
        return;
      }
      if (!p.authed) {
        const name = type === T_AUTH_OK ? checkAuthOk(this.o.secrets.keys(), this.o.policy, challenge, nonce, body) : null;
        if (name !== p.addr.name) {
          p.problem = 'did not prove the secret';
          proofSent = false;
          this.logOnce(`dial ${p.addr.name}`, `peer ${p.addr.name} at ${p.addr.host}:${p.addr.port} did not prove the policy's secret${name ? ` (says it is ${name})` : ''}`);
          return void cut(sock);
        }
        p.authed = true;
        p.problem = null;
        this.logged.delete(`dial ${p.addr.name}`);
        clearTimeout(authTimer);
        return;
      }
      if (type === T_STATE) {
        let st: PeerState;
        try {
          st = JSON.parse(body.toString()) as PeerState;
        } catch {
          return void cut(sock);
        }
        p.state = st;
        if (p.up) this.o.onState(p.addr.name, st);
        else this.maybeUp(p);
      }
      // PONG: lastHeard above is all it is for.
    });
    sock.on('data', (c: Buffer) => {
      if (!parser.push(c)) cut(sock);
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(authTimer);
      if (p.sock !== sock) return;
      p.sock = null;
      if (proofSent && !p.authed && !this.closed) {
        // Cut off right after our proof: most likely it holds none of the secrets we proved.
        p.problem = 'closed after our proof (another secret?)';
        this.logOnce(`dial ${p.addr.name}`, `peer ${p.addr.name} at ${p.addr.host}:${p.addr.port} closed the connection after this node's proof of the policy's secret (does it hold another secret?)`);
      }
      const wasUp = p.up;
      const hadData = p.dataReady;
      p.up = false;
      p.authed = false;
      p.state = null;
      // A data connection still being dialled goes with it; one handed over is closed by onDown's callee.
      if (!p.dataReady) cut(p.data);
      p.data = null;
      p.dataReady = false;
      if (wasUp) {
        this.counters.downs++;
        this.o.log(`peer ${p.addr.name} down`);
      }
      if (wasUp || hadData) this.o.onDown(p.addr.name);
      if (this.closed) return;
      const delay = p.backoff;
      p.backoff = Math.min(BACKOFF_MAX, p.backoff * 2);
      p.timer = setTimeout(() => {
        p.timer = null;
        this.dial(p);
      }, delay);
    });
  }

  private accept(sock: net.Socket): void {
    if (this.closed) return void sock.destroy();
    sock.setNoDelay(true);
    const c = { sock, peer: null as string | null, lastHeard: Date.now() };
    this.inbound.add(c);
    const challenge = newNonce();
    const parser = new FrameParser((type, body) => {
      // Frames after a refusal in the same read are not looked at.
      if (sock.destroyed) return;
      c.lastHeard = Date.now();
      if (!c.peer) {
        // The only frame read from a connection that has not proved the secret.
        const from = `${sock.remoteAddress}:${sock.remotePort}`;
        const version = type === T_AUTH ? announcedVersion(type, body) : null;
        if (version !== null && version !== PROTOCOL_VERSION) {
          this.counters.wrongVersion++;
          const peer = this.peerAt(sock.remoteAddress);
          this.logOnce(`accept ${peer ?? sock.remoteAddress}`, `refused a node-link connection from ${peer ? `${peer} (${from})` : from}: it speaks node-link protocol ${version}, this node speaks ${PROTOCOL_VERSION} (run the same bpfctl on every node; docs/multi-node.md)`, `version ${version}`);
          return void cut(sock);
        }
        const who = type === T_AUTH ? checkAuth(this.o.secrets.keys(), this.o.policy, challenge, body) : null;
        if (!who || !this.out.has(who.name)) {
          this.counters.refused++;
          const peer = this.peerAt(sock.remoteAddress);
          const why = who ? `unknown node ${who.name}` : 'no valid proof of the policy secret';
          // Once per address until it links: a node left with an old secret retries every second.
          this.logOnce(`accept ${peer ?? sock.remoteAddress}`, `refused a node-link connection from ${peer ? `${peer} (${from})` : from}: ${why}`, why);
          return void cut(sock);
        }
        c.peer = who.name;
        this.counters.authenticated++;
        this.logged.delete(`accept ${sock.remoteAddress}`);
        this.logged.delete(`accept ${who.name}`);
        if (!this.o.secrets.isCurrent(who.secret)) {
          this.counters.previousSecret++;
          this.logOnce(`previous ${who.name}`, `peer ${who.name} proved only the previous secret (it has not seen the new one yet): accepted during the grace period`);
        } else this.logged.delete(`previous ${who.name}`);
        if (who.channel === CHANNEL_DATA) {
          send(sock, frame(T_AUTH_OK, authOkBody(who.secret, this.o.policy, challenge, who.nonce, this.o.self, CHANNEL_DATA)));
          // Nothing follows the proof before our answer (the dialer waits for it): handed over unread.
          this.inbound.delete(c);
          c.peer = who.name;
          sock.pause();
          sock.removeAllListeners('data');
          sock.removeAllListeners('close');
          this.o.onDataChannel(who.name, 'in', sock);
          return;
        }
        // Proved back with the secret the dialer showed, which it holds (the new one when both have it).
        send(sock, frame(T_AUTH_OK, authOkBody(who.secret, this.o.policy, challenge, who.nonce, this.o.self)));
        if (this.myState) send(sock, frame(T_STATE, Buffer.from(JSON.stringify(this.myState))));
        return;
      }
      if (type === T_PING) send(sock, frame(T_PONG));
      // DATA comes on data connections only (protocol 3): anything else on this one is ignored.
    });
    sock.on('data', (chunk: Buffer) => {
      if (!parser.push(chunk)) {
        if (!c.peer) this.counters.refused++;
        cut(sock);
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => this.inbound.delete(c));
    send(sock, frame(T_CHALLENGE, challengeBody(challenge)));
  }
}
