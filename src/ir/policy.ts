/**
 * A policy as plain, validated, JSON-serialisable data: the one source of truth that codegen,
 * the loader and the runtime read. `lowerPolicy` checks a user's spec (whatever it is: the types
 * only help TypeScript authors) and assigns ids; `hash` identifies the IR's content. A pure
 * function of the spec: reading policy files is src/load's job.
 */
import { createHash } from 'node:crypto';
import type { PolicySpec } from '../dsl/policy.ts';
import { type FunctionIR, type GatewayIR, lowerFunctions, lowerGateway, lowerPool, lowerRoutes, type PoolIR, type RouteIR } from './chain.ts';
import { checkKeys, type Issues, IssueList, isPlainObject, snapshotSpec } from './issues.ts';
import { lowerPacketChains, lowerPacketFunctions, PACKET_BUFFER_SIZES, type PacketIR, packetPorts } from './packet.ts';
import { lowerTc, lowerXdp, type TcSectionIR, type XdpSectionIR } from './xdp.ts';

export type { FunctionIR, GatewayIR, PoolIR, RouteIR } from './chain.ts';
export type { PacketChainIR, PacketFunctionIR, PacketIR, PacketPortIR } from './packet.ts';
export { PolicyError, type PolicyIssue } from './issues.ts';

/** The pool a chain gets when its policy names none: 4 MiB in 4 KiB buffers. */
export const DEFAULT_POOL = { bufferSize: 4096, bufferCount: 1024 } as const;

/** Format version of the IR itself (bump when its shape or meaning changes). */
export const IR_VERSION = 1;

export interface PolicyIR {
  name: string;
  version: number;
  /** sha256 (hex) of the canonical JSON of every other field: the policy's schema hash. */
  hash: string;
  gateway: GatewayIR;
  /** User functions, ids 1..N in policy order. */
  functions: FunctionIR[];
  routes: RouteIR[];
  pool: PoolIR;
  xdp: XdpSectionIR[];
  /**
   * The policy's tc sections; present only when it has some, so the IR (and the hash) of a
   * policy without them is what it was before tc existed.
   */
  tc?: TcSectionIR[];
  /**
   * Packet functions, packet chains and their ports (src/ir/packet.ts); present only when the
   * policy declares packet functions or chains, so a policy without them keeps its IR and hash.
   */
  packet?: PacketIR;
}

export interface LowerOptions {
  /**
   * Absolute directory the policy's relative paths start from (packet function handlers and
   * commands): the policy file's directory, which loadPolicyFile passes. Without it a relative
   * packet function path is a policy error (the IR holds absolute ones, and is not to guess).
   */
  baseDir?: string;
}

const POLICY_NAME = /^[a-z0-9][a-z0-9_-]{0,47}$/;

/**
 * Validates a policy spec and lowers it to the IR. Any input is accepted: one that is not a
 * valid policy (whatever it holds: holes, cycles, BigInts, getters that throw, proxies) gives a
 * PolicyError, never another error.
 * @throws PolicyError listing every problem, each with its path.
 */
export function lowerPolicy(input: PolicySpec | unknown, options: LowerOptions = {}): PolicyIR {
  const issues = new IssueList();
  const spec = snapshotSpec(input, issues);
  issues.throwIfAny();
  if (!isPlainObject(spec)) {
    issues.add([], 'a policy must be an object (did you default-export definePolicy({...})?)');
    issues.throwIfAny();
    throw new Error('unreachable');
  }
  checkKeys(spec, ['name', 'functions', 'routes', 'pool', 'gateway', 'xdp', 'tc', 'packetFunctions', 'packetChains'], [], issues);
  let name = '';
  if (typeof spec.name !== 'string' || !POLICY_NAME.test(spec.name)) {
    issues.add(['name'], `policy name must be 1-48 characters of a-z, 0-9, '-', '_' starting with a letter or digit (it names pin directories and files), got ${JSON.stringify(spec.name) ?? 'nothing'}`);
  } else {
    name = spec.name;
  }
  const gateway = lowerGateway(spec.gateway, issues);
  // A chain is optional: a policy may be XDP sections only (a firewall), but not nothing at all.
  const chainless = spec.functions === undefined && spec.routes === undefined;
  const none = (v: unknown) => v === undefined || (Array.isArray(v) && v.length === 0);
  if (chainless && none(spec.xdp) && none(spec.tc)) {
    issues.add([], 'a policy needs a chain (functions and routes), xdp or tc sections, or both');
  }
  const functions = chainless ? [] : lowerFunctions(spec.functions, issues);
  const routes = chainless ? [] : lowerRoutes(spec.routes, functions, issues);
  const pool = spec.pool === undefined ? { ...DEFAULT_POOL } : lowerPool(spec.pool, issues);
  if (options.baseDir !== undefined && !options.baseDir.startsWith('/')) throw new RangeError(`lowerPolicy: baseDir must be an absolute directory, got ${JSON.stringify(options.baseDir)}`);
  const baseDir = options.baseDir;
  const packetFunctions = lowerPacketFunctions(spec.packetFunctions, functions.map((f) => f.name), baseDir, issues);
  // packetFunctions that are no object were reported: the chains' names cannot be checked against them.
  const known = spec.packetFunctions === undefined || isPlainObject(spec.packetFunctions);
  const pending = lowerPacketChains(spec.packetChains, known ? packetFunctions : null, issues);
  let xdp: XdpSectionIR[] = [];
  if (spec.xdp !== undefined && !Array.isArray(spec.xdp)) issues.add(['xdp'], 'xdp must be an array of sections');
  else xdp = lowerXdp(spec.xdp, ['xdp'], issues, pending.names);
  const { ports, chains } = packetPorts(xdp, pending.chains, issues);
  // Any chain declared, valid or not: its pool will be the UMEM either way.
  if (pending.names.ids.size + pending.names.broken.size > 0) checkPacketPool(spec.pool, pool.bufferSize, issues);
  let tc: TcSectionIR[] = [];
  if (spec.tc !== undefined && !Array.isArray(spec.tc)) issues.add(['tc'], 'tc must be an array of sections');
  else tc = lowerTc(spec.tc, ['tc'], issues);
  issues.throwIfAny(name ? { policy: name } : undefined);
  const packet: PacketIR | undefined = packetFunctions.length || chains.length ? { functions: packetFunctions, chains, ports } : undefined;
  const body = { name, version: IR_VERSION, gateway, functions, routes, pool, xdp, ...(tc.length ? { tc } : {}), ...(packet ? { packet } : {}) };
  return { ...body, hash: hashIR(body) };
}

/**
 * pktio registers the pool as the AF_XDP UMEM with one chunk per buffer, and the kernel takes
 * aligned chunks of 2048 or 4096 bytes only (a power of two from 2 KiB to the page size).
 */
function checkPacketPool(spec: unknown, bufferSize: number, issues: Issues): void {
  if (PACKET_BUFFER_SIZES.includes(bufferSize)) return;
  const path = isPlainObject(spec) && spec.bufferSize !== undefined ? ['pool', 'bufferSize'] : ['pool'];
  issues.add(path, `bufferSize must be 2048 or 4096 in a policy with packet chains, got ${bufferSize}: the pool is the AF_XDP UMEM, one buffer per chunk, and the kernel takes chunks of 2048 or 4096 bytes`);
}

/** JSON with object keys sorted at every level, so equal data always gives equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (isPlainObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]));
    return v;
  });
}

/** sha256 of the canonical JSON of an IR, ignoring any `hash` field it already has. */
export function hashIR(ir: Omit<PolicyIR, 'hash'> | PolicyIR): string {
  const { hash: _ignored, ...rest } = ir as PolicyIR;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}
