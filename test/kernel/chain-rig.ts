/**
 * A function chain on real TCP sockets for the chain kernel tests: a hub (the TCP peer every
 * function socket connects to), the chain object (bpf/chain) loaded and its sk_msg program attached to
 * `socks`, and in-process "functions" that read descriptors and forward them one hop on, the way
 * the runtime's functions do. Sockets enter `socks` through the loader path (`updateFd`), the
 * only way in: the supervisor does the same with the sockets its processes hand it.
 */
import { once } from 'node:events';
import { createServer, type Server, Socket } from 'node:net';
import { BpfObject, type BpfMap, mkdirp, unpinAll } from '../../loader/index.ts';
import { CHAIN_SOURCE, chainDefines, type DropVerdict } from '../../src/codegen/chain/index.ts';
import { compileBpf } from '../../src/compile/index.ts';
import {
  DEAD_LETTER_KEY_BYTES,
  encodeConfig,
  encodeInstances,
  encodeRoute,
  encodeRouteSlot,
  INITIAL_ROUTES_GEN,
  instancesTable,
  type RouteSlot,
  routeTable,
  sockKeyBytes,
  sumCount,
  sumCounters,
  u32Key,
} from '../../src/ir/chain-maps.ts';
import type { PolicyIR } from '../../src/ir/policy.ts';
import { type Descriptor, descriptor } from '../../src/schema/descriptor.ts';
import { decode, encode } from '../../src/schema/encode.ts';

export const POOL = { dataOff: 4096, bufSize: 4096, bufCount: 64 };
export const PIN_ROOT = `/sys/fs/bpf/bpfctl-test-${process.pid}`;

/** The chain object: the same for every policy (`_ir` is only what the rig fills the maps from). */
export function compileChain(_ir: PolicyIR, dropVerdict?: DropVerdict): string {
  return compileBpf(CHAIN_SOURCE, { defines: chainDefines({ dropVerdict }) }).objectPath;
}

export function desc(d: Partial<Descriptor>): Uint8Array {
  return encode(descriptor, { route: 0, hop: 0, flags: 0, gw_inst: 0, status: 0, req_id: 0, buf_off: POOL.dataOff, buf_len: 0, buf_gen: 0, ...d });
}

/** Splits a TCP byte stream into 24-byte descriptors (one read may hold several, or half of one). */
class DescReader {
  private pending = Buffer.alloc(0);
  push(chunk: Buffer): Descriptor[] {
    this.pending = Buffer.concat([this.pending, chunk]);
    const out: Descriptor[] = [];
    while (this.pending.length >= descriptor.size) {
      out.push(decode(descriptor, new Uint8Array(this.pending.subarray(0, descriptor.size))));
      this.pending = this.pending.subarray(descriptor.size);
    }
    return out;
  }
}

export interface Visit {
  fn: number;
  inst: number;
  req: number;
  hop: number;
}

export interface Endpoint {
  fn: number;
  inst: number;
  sock: Socket;
  received: Descriptor[];
  /** Errors the socket raised (a failed send surfaces here, gotcha 8). */
  errors: Error[];
}

export class ChainRig {
  readonly obj: BpfObject;
  readonly socks: BpfMap;
  readonly hub: Server;
  readonly hubPeers: Socket[] = [];
  /** Bytes that reached the hub side of each connection (descriptors passed to the TCP peer). */
  readonly hubReceived: Descriptor[] = [];
  readonly visits: Visit[] = [];
  readonly endpoints: Endpoint[] = [];
  private detach: () => void;

  private constructor(
    readonly ir: PolicyIR,
    objectPath: string,
  ) {
    this.obj = BpfObject.open(objectPath);
    this.obj.load();
    this.socks = this.obj.map('socks');
    // gotcha 2: the program must be on the map before any socket goes in.
    const att = this.obj.program('chain_msg').attachSockMap(this.socks, 'msg_verdict');
    this.detach = () => att.close();
    this.hub = createServer((peer) => {
      this.hubPeers.push(peer);
      const r = new DescReader();
      peer.on('data', (b) => this.hubReceived.push(...r.push(b)));
      peer.on('error', () => {});
    });
  }

  static async start(ir: PolicyIR, opts: { dropVerdict?: DropVerdict; pin?: string } = {}): Promise<ChainRig> {
    const rig = new ChainRig(ir, compileChain(ir, opts.dropVerdict));
    rig.hub.listen(0, '127.0.0.1');
    await once(rig.hub, 'listening');
    for (const e of routeTable(ir)) rig.map('routes').update(e.key, e.value);
    for (const e of instancesTable(ir)) rig.map('instances').update(e.key, e.value);
    rig.map('config').update(u32Key(0), encodeConfig({ poolSize: POOL.dataOff + POOL.bufSize * POOL.bufCount, dataOff: POOL.dataOff, bufSize: POOL.bufSize, bufCount: POOL.bufCount, hubPort: rig.hubPort, routesGen: INITIAL_ROUTES_GEN }));
    if (opts.pin) {
      mkdirp(opts.pin);
      rig.socks.pin(`${opts.pin}/socks`);
      rig.obj.program('chain_msg').pin(`${opts.pin}/chain_msg`);
    }
    return rig;
  }

  get hubPort(): number {
    return (this.hub.address() as { port: number }).port;
  }

  map(name: string): BpfMap {
    return this.obj.map(name);
  }

  /** Connects a socket for instance `inst` of function `fn` and registers it (loader path). */
  async connect(fn: number, inst: number, opts: { forward?: boolean; key?: Uint8Array } = {}): Promise<Endpoint> {
    const sock = new Socket();
    const ep: Endpoint = { fn, inst, sock, received: [], errors: [] };
    sock.on('error', (e) => ep.errors.push(e));
    sock.connect(this.hubPort, '127.0.0.1');
    await once(sock, 'connect');
    while (this.hubPeers.length < this.endpoints.length + 1) await new Promise((r) => setTimeout(r, 5));
    const reader = new DescReader();
    sock.on('data', (b) => {
      for (const d of reader.push(b)) {
        ep.received.push(d);
        if (fn === 0 || opts.forward === false || d.flags & 0x80) continue;
        this.visits.push({ fn, inst, req: d.req_id, hop: d.hop });
        // A function's work: pass the request on to the next hop.
        sock.write(desc({ ...d, hop: d.hop + 1 }));
      }
    });
    const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
    this.socks.updateFd(opts.key ?? sockKeyBytes(fn, inst), fd);
    this.endpoints.push(ep);
    return ep;
  }

  /** Connects one socket per declared instance of every function (and the gateway). */
  async connectAll(): Promise<Map<string, Endpoint>> {
    const out = new Map<string, Endpoint>();
    for (const f of [this.ir.gateway, ...this.ir.functions]) {
      for (let i = 0; i < f.instances; i++) out.set(`${f.name}/${i}`, await this.connect(f.id, i));
    }
    return out;
  }

  /** Writes a route slot live from generation 1 (hops [] frees the slot). */
  setRoute(slot: number, hops: number[]): void {
    this.map('routes').update(u32Key(slot), encodeRoute(hops));
  }

  /** Writes a route slot with every field (version, retired, ...), as a route change does. */
  setRouteSlot(slot: number, value: RouteSlot): void {
    this.map('routes').update(u32Key(slot), encodeRouteSlot(value));
  }

  setInstances(fn: number, ids: number[]): void {
    this.map('instances').update(u32Key(fn), encodeInstances(ids));
  }

  counters(map: 'fn_stats' | 'route_stats', id: number) {
    const m = this.map(map);
    return sumCounters(m.lookup(u32Key(id))!, m.possibleCpus);
  }

  drops(reason: number): bigint {
    const m = this.map('drop_reasons');
    return sumCount(m.lookup(u32Key(reason))!, m.possibleCpus);
  }

  static readonly DEAD_LETTER = DEAD_LETTER_KEY_BYTES;

  async close(): Promise<void> {
    for (const e of this.endpoints) e.sock.destroy();
    for (const p of this.hubPeers) p.destroy();
    await new Promise<void>((r) => this.hub.close(() => r()));
    this.detach();
    this.obj.close();
  }
}

/** Waits until `cond` holds (sockets deliver asynchronously), failing after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export { unpinAll };
