/**
 * The node-link: where a chain leaves this node and where it comes in (docs/multi-node.md).
 *
 * To the local chain it looks like function instances: for every function with no local
 * instance, it holds a chain socket per peer that runs the function, registered in `socks` as
 * instance REMOTE_INST_BASE + that peer's index, and those are the function's `instances`; and a
 * socket for every gateway instance of another node. So the sk_msg program redirects a descriptor
 * bound for a remote function or a remote gateway into the node-link's socket, exactly as it
 * would into a local instance's; no kernel change, and local hops keep their fast path. Local
 * instances are preferred: a function with any local instance never lists remote ones.
 *
 * A descriptor read from such a socket is sent with its payload (copied out of the pool) to the
 * peer; the peer copies the payload into a buffer of its own pool and writes the descriptor into
 * its chain, which routes it on. Answers travel the same way to the node of the gateway that took
 * the request (`gw_inst` names it: node gateways are numbered apart).
 *
 * Buffers: the origin's gateway keeps its request buffer until the reply; so when a request of a
 * local gateway leaves, its buffer stays and is remembered (`pending`), and the answer is copied
 * back into it. A request of another node's gateway that comes in gets a buffer allocated here
 * (marked RESPONSE_NEW_BUF, so the functions adopt it); when it leaves again, that buffer is freed.
 * A token per forward tells a late answer from the answer to a newer request that reuses the id.
 *
 * Failures: when a peer goes down, every request of a local gateway sent there is failed at once
 * (an ERROR descriptor with 503 to its gateway), and for requests of other nodes' gateways that
 * went from here to the dead peer, a 503 goes back to their origin.
 *
 * Two engines move the descriptors: 'native' (the default), a C process of its own
 * (native/node-link.c, driven through native-data.ts) that this class hands the sockets to, and
 * 'node', the same logic in this class's event loop (fromChain, onData, flush below). The control
 * side (peers, which sockets exist, `instances`, spilling) is this class's with either engine.
 */
import net from 'node:net';
import { type ChainMaps, openChainMaps } from '../../deploy/chain-maps.ts';
import { readManifest } from '../../deploy/manifest.ts';
import { MAX_INSTANCES } from '../../ir/chain-limits.ts';
import { DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF, DESC_SIZE } from '../../schema/descriptor.ts';
import { Pool, resolvePoolPath } from '../pool/index.ts';
import { LiveRouteTable } from '../route-table.ts';
import { socketFd } from '../sdk/link.ts';
import { DESC_FLAG_DROPPED, type Desc, DescRecord, FrameCutter, readDescInto, writeDesc } from '../sdk/wire.ts';
import { ByteBatch } from './batch.ts';
import { NativeDataPath } from './native-data.ts';
import { cut } from '../socket-cut.ts';
import { type PeerAddress, Peers } from './peers.ts';
import { appendRecord, FrameParser, putFrameHead, RecordCursor, T_DATA } from './protocol.ts';
import type { SecretRing } from './secrets.ts';
import { CpuMeter, decideSpill, SAMPLE_MS } from './spill.ts';

/** Instance ids of remote nodes in a function's `instances`: this base + the node's index. */
export const REMOTE_INST_BASE = 0xf000;
/** The gateway-function key of the socket the node-link writes incoming descriptors from (no descriptor targets it). */
export const INJECT_INST = 0xfff0;
/** Entries older than this are long answered (504) or lost: forgotten. */
const FORGET_MS = 60_000;
const EMPTY = new Uint8Array(0);
/** How long a socket that left `instances` is still read from before it is closed. */
const RETIRE_MS = 500;

export interface NodeLinkOptions {
  node: string;
  labels: Record<string, string>;
  /** Every node of the policy, this one included, sorted: a node's index is its place here. */
  nodes: string[];
  policy: string;
  /** The secrets new handshakes accept (a rotation changes them under a running node-link). */
  secrets: SecretRing;
  listen: { host: string; port: number };
  peers: PeerAddress[];
  root: string;
  pinDir: string;
  poolName: string;
  hubPort: number;
  /** This node's gateway instance ids. */
  gateways: number[];
  registerSocket(fnId: number, inst: number, fd: number, localPort?: number): void;
  /** Lists other nodes' instance ids after the local ones of a function ([] to stop). */
  setRemoteInstances(fnId: number, ids: number[]): void;
  /** Pids of this node's running instances of a function. */
  localPids(fn: string): number[];
  log(line: string): void;
  /** The native data path's executable (buildNativeNodeLink); without it the 'node' engine moves the descriptors. */
  nativeExe?: string;
}

export type NodeLinkEngine = 'native' | 'node';

interface Pending {
  peer: string;
  token: number;
  route: number;
  flags: number;
  bufOff: number;
  bufGen: number;
  at: number;
}

interface Transit {
  peer: string;
  token: number;
  route: string;
  at: number;
}

/** One chain socket of the node-link and where what it reads goes. */
interface ChainSock {
  fnId: number;
  inst: number;
  /** 'fn': to the peer of this index; 'gw': to the node owning that gateway id. */
  sock: net.Socket;
  up: boolean;
  /** Handed to the native data path: this process holds no descriptor of it any more. */
  handed: boolean;
}

const key = (gw: number, req: number): number => gw * 0x1_0000_0000 + req;

export interface NodeLinkStatus {
  node: string;
  listen: string;
  peers: ReturnType<Peers['status']>;
  /** Functions served by other nodes, with the instance ids standing for them. */
  remote: { function: string; fnId: number; peers: string[]; instances: number[] }[];
  /** Functions with local instances that other nodes run too: where they may spill, and whether they do now. */
  spill: { function: string; fnId: number; peers: string[]; instances: number[]; active: boolean; busy: number | null }[];
  /**
   * Descriptors sent and received, requests failed at once; connections refused for no valid
   * proof (`refused`) or another protocol version (`wrongVersion`), handshakes that held only with
   * the previous secret (`previousSecret`).
   */
  counters: NodeLink['counters'] & { refused: number; wrongVersion: number; previousSecret: number };
  pending: number;
  engine: NodeLinkEngine;
}

export class NodeLink {
  private readonly peers: Peers;
  private readonly pool: Pool;
  private readonly routes: LiveRouteTable;
  private readonly maps: ChainMaps;
  private readonly socks = new Map<number, ChainSock>();
  private readonly retiring = new Set<ChainSock>();
  private inject: ChainSock | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly transit = new Map<number, Transit>();
  private readonly arrivals = new Map<number, { token: number; at: number }>();
  private readonly local: Set<number>;
  private readonly gwOwner = new Map<number, string>();
  private readonly written = new Map<number, string>();
  private remote: NodeLinkStatus['remote'] = [];
  private spill: NodeLinkStatus['spill'] = [];
  private readonly spilling = new Set<string>();
  private readonly meter = new CpuMeter();
  private sampler: NodeJS.Timeout | null = null;
  /** Per peer, the DATA frame being built this event-loop turn (5 bytes of frame head first). */
  private readonly outgoing = new Map<string, ByteBatch>();
  private readonly cursor = new RecordCursor();
  /** Route names as the bytes a record carries (a name's bytes never change), and routes by name for the current routes. */
  private readonly routeNames = new Map<string, Buffer>();
  private routesByName = new Map<string, ReturnType<LiveRouteTable['bySlot']>>();
  private routeList: unknown = null;
  private flushQueued = false;
  private readonly injectBatch = new ByteBatch();
  private token = 1;
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;
  private port = 0;
  private readonly native: NativeDataPath | null;
  /** 'node' engine: the data connection to each peer, and the ones each peer dialled. */
  private readonly dataOut = new Map<string, net.Socket>();
  private readonly dataIn = new Map<string, Set<net.Socket>>();
  readonly counters = { sent: 0, received: 0, failedFast: 0, afterDown: 0, stale: 0, noBuffer: 0, unknownRoute: 0, malformed: 0, spillChanges: 0 };

  constructor(private readonly o: NodeLinkOptions) {
    this.local = new Set(o.gateways);
    this.pool = Pool.open(o.poolName);
    this.routes = LiveRouteTable.open(o.pinDir);
    this.maps = openChainMaps(o.policy, o.root);
    this.peers = new Peers({
      self: o.node,
      policy: o.policy,
      secrets: o.secrets,
      listen: o.listen,
      peers: o.peers,
      onState: () => this.sync(),
      onDown: (peer) => this.peerDown(peer),
      onDataChannel: (peer, dir, sock) => this.onDataChannel(peer, dir, sock),
      log: (l) => o.log(`[node-link] ${l}`),
    });
    this.native = o.nativeExe
      ? new NativeDataPath({
          exe: o.nativeExe,
          poolPath: resolvePoolPath(o.poolName),
          pinDir: o.pinDir,
          nodes: o.nodes,
          gateways: o.gateways,
          log: o.log,
          onLost: (peer) => this.peers.dataLost(peer),
          onExit: (why) => o.log(`[node-link] the native data path ${why}: cross-node hops fail until the agent restarts`),
        })
      : null;
  }

  get engine(): NodeLinkEngine {
    return this.native ? 'native' : 'node';
  }

  async start(): Promise<number> {
    await this.native?.start();
    this.inject = await this.openSock(0, INJECT_INST);
    this.port = await this.peers.start();
    this.sweeper = setInterval(() => this.sweep(), 5000);
    this.sampler = setInterval(() => this.sampleLoad(), SAMPLE_MS);
    this.sync();
    return this.port;
  }

  /**
   * Converges the sockets and `instances` of remote functions to what the peers that are up run
   * and what runs here (after an apply, a peer change, and periodically). Call it freely.
   */
  sync(): void {
    if (this.closed) return;
    const fns = readManifest(this.o.pinDir).ir.functions;
    const up = this.peers.up();
    this.peers.setState({ node: this.o.node, labels: this.o.labels, gw: this.o.gateways, hosts: fns.filter((f) => f.instances > 0).map((f) => f.name), spill: [...this.spilling].sort() });
    const want = new Map<number, { fnId: number; inst: number }>();
    this.gwOwner.clear();
    for (const p of up) {
      for (const g of p.state.gw) {
        if (this.local.has(g)) continue;
        this.gwOwner.set(g, p.name);
        want.set((0 << 16) | g, { fnId: 0, inst: g });
      }
    }
    const remote: NodeLinkStatus['remote'] = [];
    const sockWrites: (() => void)[] = [];
    const spill: NodeLinkStatus['spill'] = [];
    for (const f of fns) {
      if (f.instances > 0) {
        this.written.delete(f.id);
        // Sockets for the other nodes that run it too (not while they spill it themselves), so
        // spilling can start at once; they are in `instances` only while it spills.
        const hosts = f.placement?.spill === false ? [] : up.filter((p) => p.state.hosts.includes(f.name) && !p.state.spill?.includes(f.name)).map((p) => p.name);
        const insts = hosts.map((h) => REMOTE_INST_BASE + this.o.nodes.indexOf(h)).slice(0, MAX_INSTANCES - f.instances);
        if (!insts.length) {
          if (this.spilling.delete(f.name)) this.o.log(`[node-link] stopped spilling ${f.name}: no other node runs it now`);
          sockWrites.push(() => this.o.setRemoteInstances(f.id, []));
          continue;
        }
        for (const i of insts) want.set((f.id << 16) | i, { fnId: f.id, inst: i });
        const prev = this.spill.find((x) => x.fnId === f.id);
        spill.push({ function: f.name, fnId: f.id, peers: hosts, instances: insts, active: this.spilling.has(f.name), busy: prev?.busy ?? null });
        sockWrites.push(() => this.o.setRemoteInstances(f.id, this.spilling.has(f.name) ? insts.filter((i) => this.socks.get((f.id << 16) | i)?.up) : []));
        continue;
      }
      const hosts = up.filter((p) => p.state.hosts.includes(f.name)).map((p) => p.name);
      const insts = hosts.map((h) => REMOTE_INST_BASE + this.o.nodes.indexOf(h)).slice(0, MAX_INSTANCES);
      for (const i of insts) want.set((f.id << 16) | i, { fnId: f.id, inst: i });
      remote.push({ function: f.name, fnId: f.id, peers: hosts, instances: insts });
      sockWrites.push(() => this.writeInstances(f.id, insts));
    }
    this.remote = remote;
    this.spill = spill;
    this.native?.setGatewayOwners(this.gwOwner);
    // Sockets first (a listed instance must have one), then the lists, then what is no longer wanted.
    const opening: Promise<unknown>[] = [];
    for (const [k, w] of want) if (!this.socks.has(k)) opening.push(this.openSock(w.fnId, w.inst).catch((err) => this.o.log(`[node-link] socket for ${w.fnId}/${w.inst}: ${(err as Error).message}`)));
    void Promise.all(opening).then(() => {
      if (this.closed) return;
      for (const w of sockWrites) w();
      for (const [k, s] of this.socks) {
        if (want.has(k)) continue;
        this.socks.delete(k);
        // The kernel may have redirected descriptors into it before `instances` changed: keep
        // reading them for a moment (fromChain fails each one fast) instead of dropping them.
        if (s.handed) {
          setTimeout(() => this.native?.closeChainSocket(s.fnId, s.inst), RETIRE_MS).unref();
          continue;
        }
        setTimeout(() => cut(s.sock), RETIRE_MS).unref();
        this.retiring.add(s);
        s.sock.once('close', () => this.retiring.delete(s));
      }
    });
  }

  private writeInstances(fnId: number, insts: number[]): void {
    const live = insts.filter((i) => this.socks.get((fnId << 16) | i)?.up);
    const sig = live.join(',');
    if (this.written.get(fnId) === sig) return;
    this.written.set(fnId, sig);
    this.maps.instances.set(fnId, { count: live.length, inst: Array.from({ length: MAX_INSTANCES }, (_, i) => live[i] ?? 0) });
  }

  /** Brings the native data path's counters up to date (status() reports the last ones read). */
  refresh(): Promise<void> {
    return this.native?.refresh() ?? Promise.resolve();
  }

  /** What it does now. With the native engine the data path's counters are those of the last refresh(). */
  status(): NodeLinkStatus {
    let counters = { ...this.counters };
    let pending = this.pending.size;
    if (this.native) {
      const n = this.native.counters;
      counters = { ...counters, sent: n.sent, received: n.received, failedFast: n.failedFast, afterDown: n.afterDown, stale: n.stale, noBuffer: n.noBuffer, unknownRoute: n.unknownRoute, malformed: n.malformed };
      pending = n.pending;
    }
    return { node: this.o.node, listen: `${this.o.listen.host}:${this.port}`, peers: this.peers.status(), remote: this.remote, spill: this.spill, counters: { ...counters, refused: this.peers.counters.refused, wrongVersion: this.peers.counters.wrongVersion, previousSecret: this.peers.counters.previousSecret }, pending, engine: this.engine };
  }

  /** An authenticated data connection: to the native data path, or read and written here ('node' engine). */
  private onDataChannel(peer: string, dir: 'out' | 'in', sock: net.Socket): void {
    if (this.closed) return void sock.destroy();
    if (this.native) return void this.native.dataChannel(peer, dir, sock);
    sock.on('error', () => {});
    if (dir === 'out') {
      this.dataOut.set(peer, sock);
      // Nothing comes this way; reading is how its end is seen.
      sock.on('data', () => {});
      sock.on('close', () => {
        if (this.dataOut.get(peer) !== sock) return;
        this.dataOut.delete(peer);
        this.peers.dataLost(peer);
      });
      sock.resume();
      return;
    }
    const set = this.dataIn.get(peer) ?? new Set<net.Socket>();
    this.dataIn.set(peer, set);
    set.add(sock);
    const parser = new FrameParser((type, body) => {
      if (type === T_DATA) this.onData(peer, body);
      else cut(sock);
    });
    sock.on('data', (c: Buffer) => {
      if (!parser.push(c)) cut(sock);
      this.scheduleFlush();
    });
    sock.on('close', () => set.delete(sock));
    sock.resume();
  }

  /** Closes the 'node' engine's data connections of a peer (the native data path closes its own on peerDown). */
  private closeData(peer: string): void {
    const out = this.dataOut.get(peer);
    this.dataOut.delete(peer);
    out?.destroy();
    for (const s of this.dataIn.get(peer) ?? []) s.destroy();
    this.dataIn.delete(peer);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.sampler) clearInterval(this.sampler);
    for (const x of this.spill) if (x.active) this.o.setRemoteInstances(x.fnId, []);
    // Out of `instances` before the sockets go: the kernel must not pick a closed socket.
    for (const r of this.remote) if (this.written.has(r.fnId)) this.maps.instances.set(r.fnId, { count: 0, inst: Array.from({ length: MAX_INSTANCES }, () => 0) });
    await this.peers.close();
    await this.native?.close();
    for (const p of [...this.dataOut.keys(), ...this.dataIn.keys()]) this.closeData(p);
    for (const s of [...this.socks.values(), ...this.retiring]) cut(s.sock);
    this.socks.clear();
    this.retiring.clear();
    if (this.inject) cut(this.inject.sock);
    this.maps.close();
    this.routes.close();
    this.pool.close();
  }

  private openSock(fnId: number, inst: number): Promise<ChainSock> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port: this.o.hubPort, noDelay: true });
      const cs: ChainSock = { fnId, inst, sock, up: false, handed: false };
      const k = (fnId << 16) | inst;
      if (!this.native) {
        const cutter = new FrameCutter((b, at) => this.fromChain(cs, b, at));
        sock.on('data', (c: Buffer) => {
          cutter.push(c);
          this.scheduleFlush();
        });
      }
      sock.on('error', (err) => {
        if (!cs.up) reject(err);
      });
      sock.on('close', () => {
        if (cs.handed) return;
        if (this.socks.get(k) === cs) this.socks.delete(k);
        if (this.inject === cs && !this.closed) this.o.log('[node-link] inject socket closed');
      });
      sock.once('connect', () => {
        try {
          this.o.registerSocket(fnId, inst, socketFd(sock), sock.localPort);
        } catch (err) {
          sock.destroy();
          reject(err);
          return;
        }
        cs.up = true;
        if (this.native) {
          cs.handed = true;
          this.native.addChainSocket(fnId, inst, sock);
        }
        if (fnId !== 0 || inst !== INJECT_INST) this.socks.set(k, cs);
        resolve(cs);
      });
    });
  }

  private readonly d: Desc = new DescRecord();

  /** A descriptor the chain sent to a remote function or gateway. */
  private fromChain(cs: ChainSock, b: Buffer, at: number): void {
    const d = this.d;
    readDescInto(b, at, d);
    if (d.flags & DESC_FLAG_DROPPED) return;
    const toGw = cs.fnId === 0;
    const peer = toGw ? this.gwOwner.get(cs.inst) : this.o.nodes[cs.inst - REMOTE_INST_BASE];
    const route = this.routes.bySlot(d.route);
    const k = key(d.gwInst, d.reqId);
    if (!this.pool.validate(d.bufOff, d.bufGen)) {
      this.counters.stale++;
      return;
    }
    const payload = this.pool.bytes(d.bufOff, Math.min(d.bufLen, this.pool.bufferSize));
    const localGw = this.local.has(d.gwInst);
    if (!peer || !route || !this.peers.isUp(peer)) {
      // The peer went down between the kernel's pick and this read (its instance ids leave
      // `instances` a moment after it goes), or the route is gone: fail the request now rather
      // than let its gateway wait for the deadline.
      if (peer) this.counters.afterDown++;
      if (localGw) {
        const f = this.failDesc({ peer: '', token: 0, route: d.route, flags: d.flags, bufOff: d.bufOff, bufGen: d.bufGen, at: 0 }, k);
        if (f) this.injectDesc(f);
        return;
      }
      // Another node's request, in a buffer of ours: free it, and tell its gateway's node.
      const token = this.arrivals.get(k)?.token ?? 0;
      this.arrivals.delete(k);
      if (!toGw) this.answerError(d, token, route?.name ?? '');
      this.freeBuffer(d.bufOff, d.bufGen);
      return;
    }
    let token = 0;
    if (localGw) {
      token = this.token = (this.token + 1) >>> 0 || 1;
      this.pending.set(k, { peer, token, route: d.route, flags: d.flags, bufOff: d.bufOff, bufGen: d.bufGen, at: Date.now() });
    } else {
      token = this.arrivals.get(k)?.token ?? 0;
      this.arrivals.delete(k);
      if (!toGw) this.transit.set(k, { peer, token, route: route.name, at: Date.now() });
    }
    this.queue(peer, b, at, toGw, token, route.name, payload);
    // The payload is copied into the batch: a buffer of ours (another node's request) is free now.
    if (!localGw) this.freeBuffer(d.bufOff, d.bufGen);
  }

  private freeBuffer(offset: number, gen: number): void {
    try {
      this.pool.free({ offset, gen });
    } catch {
      this.counters.stale++;
    }
  }

  private queue(peer: string, desc: Buffer, descAt: number, toGw: boolean, token: number, route: string, payload: Uint8Array): void {
    let q = this.outgoing.get(peer);
    if (!q) {
      q = new ByteBatch(5);
      this.outgoing.set(peer, q);
    }
    let name = this.routeNames.get(route);
    if (!name) {
      name = Buffer.from(route);
      this.routeNames.set(route, name);
    }
    appendRecord(q, desc, descAt, toGw, token, name, payload);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(this.flush);
  }

  /** Everything of one event-loop turn in one write per peer, and one write into the chain. */
  private readonly flush = (): void => {
    this.flushQueued = false;
    for (const [peer, q] of this.outgoing) {
      if (q.count === 0) continue;
      const sock = this.peers.isUp(peer) ? this.dataOut.get(peer) : undefined;
      const n = q.count;
      if (sock) {
        putFrameHead(q.bytes(), T_DATA);
        q.writeTo(sock);
        this.counters.sent += n;
      } else {
        // It went down after these were queued (and perhaps after its down was handled): fail
        // what waits on it now, not at the deadline.
        q.clear();
        this.counters.afterDown += n;
        this.failWaitingOn(peer);
      }
    }
    if (this.injectBatch.size && this.inject?.up) this.injectBatch.writeTo(this.inject.sock);
  };

  private injectDesc(d: Desc): void {
    const b = this.injectBatch.room(DESC_SIZE);
    writeDesc(b, this.injectBatch.offset, d);
    this.injectBatch.commit(DESC_SIZE);
    this.scheduleFlush();
  }

  private routeByName(name: string): ReturnType<LiveRouteTable['bySlot']> {
    const list = this.routes.current();
    if (list !== this.routeList) {
      this.routeList = list;
      this.routesByName = new Map(list.map((r) => [r.name, r]));
    }
    return this.routesByName.get(name);
  }

  /** Descriptors a peer sent: into a pool buffer of this node, and into the chain. */
  private readonly dIn: Desc = new DescRecord();

  private onData(peer: string, body: Buffer): void {
    const r = this.cursor;
    // A batch is taken whole or not at all: a malformed one is refused before any record acts.
    r.reset(body);
    let ok: boolean | null = true;
    while (ok === true) ok = r.next();
    if (ok === null) {
      this.counters.malformed++;
      this.o.log(`[node-link] malformed batch from ${peer}`);
      return;
    }
    r.reset(body);
    const d = this.dIn;
    while (r.next()) {
      this.counters.received++;
      readDescInto(body, r.descAt, d);
      const k = key(d.gwInst, d.reqId);
      const len = r.payloadLen;
      if (this.local.has(d.gwInst)) {
        const p = this.pending.get(k);
        // Failed already (peer down, 504) or an answer to an older request that reused the id.
        if (!p || p.token !== r.token) continue;
        this.pending.delete(k);
        if (!this.pool.validate(p.bufOff, p.bufGen) || len > this.pool.bufferSize) {
          this.counters.stale++;
          continue;
        }
        this.pool.bytes(p.bufOff, len).set(r.payload());
        d.route = p.route;
        d.bufOff = p.bufOff;
        d.bufGen = p.bufGen;
        d.bufLen = len;
        d.flags = (p.flags & DESC_FLAG_RESPONSE_NEW_BUF) | (d.flags & DESC_FLAG_ERROR);
        if (r.toGateway) d.hop = this.routes.bySlot(p.route)?.len ?? d.hop;
        this.injectDesc(d);
        continue;
      }
      if (r.toGateway) continue;
      const name = r.route();
      const route = this.routeByName(name);
      const buf = route && len <= this.pool.bufferSize ? this.pool.alloc() : null;
      if (!route || !buf) {
        if (!route) this.counters.unknownRoute++;
        else this.counters.noBuffer++;
        this.answerError(d, r.token, name);
        continue;
      }
      this.pool.bytes(buf.offset, len).set(r.payload());
      d.route = route.slot;
      d.bufOff = buf.offset;
      d.bufGen = buf.gen;
      d.bufLen = len;
      d.flags = DESC_FLAG_RESPONSE_NEW_BUF;
      this.arrivals.set(k, { token: r.token, at: Date.now() });
      this.injectDesc(d);
    }
  }

  /** A 503 for a request of another node's gateway, sent to that node. */
  private answerError(d: Desc, token: number, route: string): void {
    const owner = this.gwOwner.get(d.gwInst);
    if (!owner) return;
    const e = new DescRecord();
    Object.assign(e, d);
    e.flags = DESC_FLAG_ERROR;
    e.status = 503;
    e.bufLen = 0;
    const b = Buffer.allocUnsafe(DESC_SIZE);
    writeDesc(b, 0, e);
    this.queue(owner, b, 0, true, token, route, EMPTY);
  }

  private peerDown(peer: string): void {
    // Out of `instances` first: no new request goes to it.
    this.sync();
    if (this.native) return void this.native.peerDown(peer);
    this.closeData(peer);
    this.failWaitingOn(peer);
  }

  /** 503s for every request sent to a peer that is down: local gateways' now, other nodes' through their node. */
  private failWaitingOn(peer: string): void {
    for (const [k, p] of this.pending) {
      if (p.peer !== peer) continue;
      this.pending.delete(k);
      const d = this.failDesc(p, k);
      if (d) this.injectDesc(d);
    }
    for (const [k, t] of this.transit) {
      if (t.peer !== peer) continue;
      this.transit.delete(k);
      const e = new DescRecord();
      e.gwInst = Math.floor(k / 0x1_0000_0000);
      e.reqId = k % 0x1_0000_0000;
      this.answerError(e, t.token, t.route);
    }
  }

  /** The 503 that fails a request of a local gateway now (an ERROR descriptor for it), or null when it is gone already. */
  private failDesc(p: Pending, k: number): Desc | null {
    const len = this.routes.bySlot(p.route)?.len;
    if (len === undefined || !this.pool.validate(p.bufOff, p.bufGen)) return null;
    this.counters.failedFast++;
    const d = new DescRecord();
    d.route = p.route;
    d.hop = len;
    d.flags = (p.flags & DESC_FLAG_RESPONSE_NEW_BUF) | DESC_FLAG_ERROR;
    d.status = 503;
    d.gwInst = Math.floor(k / 0x1_0000_0000);
    d.reqId = k % 0x1_0000_0000;
    d.bufOff = p.bufOff;
    d.bufGen = p.bufGen;
    d.bufLen = 0;
    return d;
  }

  /** Starts or stops spilling each function that other nodes run too, from its local instances' CPU use. */
  private sampleLoad(): void {
    if (this.closed || !this.spill.length) return;
    let changed = false;
    const seen = new Set<number>();
    for (const x of this.spill) {
      const pids = this.o.localPids(x.function);
      for (const p of pids) seen.add(p);
      const busy = this.meter.busy(pids).filter((b): b is number => b !== null);
      if (!busy.length) continue;
      x.busy = busy.reduce((a, b) => a + b, 0) / busy.length;
      const next = decideSpill(x.active, x.busy, pids.length, x.instances.length);
      if (next === x.active) continue;
      changed = true;
      if (next) this.spilling.add(x.function);
      else this.spilling.delete(x.function);
      this.counters.spillChanges++;
      this.o.log(`[node-link] ${next ? `spilling ${x.function} to ${x.peers.join(', ')}` : `stopped spilling ${x.function}`}: its ${pids.length} local instance${pids.length > 1 ? 's' : ''} ${Math.round(x.busy * 100)}% busy`);
    }
    this.meter.keep(seen);
    // Lists `instances` and tells the peers (none spills a function back to a node spilling it).
    if (changed) this.sync();
  }

  private sweep(): void {
    this.native?.sweep();
    const old = Date.now() - FORGET_MS;
    for (const m of [this.pending, this.transit, this.arrivals] as Map<number, { at: number }>[]) for (const [k, v] of m) if (v.at < old) m.delete(k);
    this.sync();
  }
}
