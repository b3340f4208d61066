/**
 * A policy as plain, validated, JSON-serialisable data: the one source of truth that codegen,
 * the loader and the runtime read. `lowerPolicy` checks a user's spec (whatever it is: the types
 * only help TypeScript authors) and assigns ids; `hash` identifies the IR's content. A pure
 * function of the spec: reading policy files is src/load's job.
 */
import { createHash } from 'node:crypto';
import type { PolicySpec } from '../dsl/policy.ts';
import { type FunctionIR, type GatewayIR, lowerFunctions, lowerGateway, lowerPool, lowerRoutes, type PoolIR, type RouteIR } from './chain.ts';
import { checkKeys, IssueList, isPlainObject, snapshotSpec } from './issues.ts';
import { lowerTc, lowerXdp, type TcSectionIR, type XdpSectionIR } from './xdp.ts';

export type { FunctionIR, GatewayIR, PoolIR, RouteIR } from './chain.ts';
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
}

const POLICY_NAME = /^[a-z0-9][a-z0-9_-]{0,47}$/;

/**
 * Validates a policy spec and lowers it to the IR. Any input is accepted: one that is not a
 * valid policy (whatever it holds: holes, cycles, BigInts, getters that throw, proxies) gives a
 * PolicyError, never another error.
 * @throws PolicyError listing every problem, each with its path.
 */
export function lowerPolicy(input: PolicySpec | unknown): PolicyIR {
  const issues = new IssueList();
  const spec = snapshotSpec(input, issues);
  issues.throwIfAny();
  if (!isPlainObject(spec)) {
    issues.add([], 'a policy must be an object (did you default-export definePolicy({...})?)');
    issues.throwIfAny();
    throw new Error('unreachable');
  }
  checkKeys(spec, ['name', 'functions', 'routes', 'pool', 'gateway', 'xdp', 'tc'], [], issues);
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
    issues.add(['(policy)'], 'a policy needs a chain (functions and routes), xdp or tc sections, or both');
  }
  const functions = chainless ? [] : lowerFunctions(spec.functions, issues);
  const routes = chainless ? [] : lowerRoutes(spec.routes, functions, issues);
  const pool = spec.pool === undefined ? { ...DEFAULT_POOL } : lowerPool(spec.pool, issues);
  let xdp: XdpSectionIR[] = [];
  if (spec.xdp !== undefined && !Array.isArray(spec.xdp)) issues.add(['xdp'], 'xdp must be an array of sections');
  else xdp = lowerXdp(spec.xdp, ['xdp'], issues);
  let tc: TcSectionIR[] = [];
  if (spec.tc !== undefined && !Array.isArray(spec.tc)) issues.add(['tc'], 'tc must be an array of sections');
  else tc = lowerTc(spec.tc, ['tc'], issues);
  issues.throwIfAny(name ? { policy: name } : undefined);
  const body = { name, version: IR_VERSION, gateway, functions, routes, pool, xdp, ...(tc.length ? { tc } : {}) };
  return { ...body, hash: hashIR(body) };
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
