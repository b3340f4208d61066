/**
 * A policy as plain, validated, JSON-serialisable data: the one source of truth that codegen,
 * the loader and the runtime read. `lowerPolicy` checks a user's spec (whatever it is: the types
 * only help TypeScript authors) and assigns ids; `hash` identifies the IR's content.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import type { PolicySpec } from '../dsl/policy.ts';
import { BpfctlError } from '../errors.ts';
import {
  checkKeys,
  type FunctionIR,
  formatPath,
  type GatewayIR,
  type Issues,
  isPlainObject,
  lowerFunctions,
  lowerGateway,
  lowerPool,
  lowerRoutes,
  type PathSegment,
  type PoolIR,
  type RouteIR,
} from './chain.ts';
import { type PolicyIssue, PolicyError } from './issues.ts';
import { lowerXdpSections, type XdpSectionIR } from './xdp.ts';

export { PolicyError, type PolicyIssue } from './issues.ts';

export type { FunctionIR, GatewayIR, PoolIR, RouteIR } from './chain.ts';

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
}

/** A policy file that cannot be imported, or whose default export is not a policy. */
export class PolicyLoadError extends BpfctlError {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('E_POLICY_LOAD', message, options);
    this.file = file;
  }
  override detail(): string {
    const c = this.cause as Error | undefined;
    return c?.stack ? `${this.message}\n${c.stack}` : this.message;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), file: this.file };
  }
}

const POLICY_NAME = /^[a-z0-9][a-z0-9_-]{0,47}$/;

/**
 * Validates a policy spec and lowers it to the IR.
 * @throws PolicyError listing every problem, each with its path.
 */
export function lowerPolicy(spec: PolicySpec | unknown): PolicyIR {
  const found: PolicyIssue[] = [];
  const issues: Issues = { add: (path: readonly PathSegment[], message: string) => void found.push({ path: formatPath(path), message }) };
  if (!isPlainObject(spec)) throw new PolicyError([{ path: '(policy)', message: 'a policy must be an object (did you default-export definePolicy({...})?)' }]);
  checkKeys(spec, ['name', 'functions', 'routes', 'pool', 'gateway', 'xdp'], [], issues);
  let name = '';
  if (typeof spec.name !== 'string' || !POLICY_NAME.test(spec.name)) {
    issues.add(['name'], `policy name must be 1-48 characters of a-z, 0-9, '-', '_' starting with a letter or digit (it names pin directories and files), got ${JSON.stringify(spec.name) ?? 'nothing'}`);
  } else {
    name = spec.name;
  }
  const gateway = lowerGateway(spec.gateway, issues);
  // A chain is optional: a policy may be XDP sections only (a firewall), but not nothing at all.
  const chainless = spec.functions === undefined && spec.routes === undefined;
  if (chainless && (spec.xdp === undefined || (Array.isArray(spec.xdp) && spec.xdp.length === 0))) {
    issues.add(['(policy)'], 'a policy needs a chain (functions and routes), xdp sections, or both');
  }
  const functions = chainless ? [] : lowerFunctions(spec.functions, issues);
  const routes = chainless ? [] : lowerRoutes(spec.routes, functions, issues);
  const pool = spec.pool === undefined ? { ...DEFAULT_POOL } : lowerPool(spec.pool, issues);
  let xdp: XdpSectionIR[] = [];
  if (spec.xdp !== undefined && !Array.isArray(spec.xdp)) {
    issues.add(['xdp'], 'xdp must be an array of sections');
  } else {
    try {
      xdp = lowerXdpSections(spec.xdp as PolicySpec['xdp'], 'xdp');
    } catch (err) {
      // The XDP lowering throws its own PolicyError; merge so one report lists everything.
      if (err instanceof PolicyError) found.push(...err.issues);
      else throw err;
    }
  }
  if (found.length) throw new PolicyError(found, name ? { policy: name } : undefined);
  const body = { name, version: IR_VERSION, gateway, functions, routes, pool, xdp };
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

/**
 * Imports a user's policy.ts (bpfctl runs under tsx, so TypeScript loads directly) and lowers its
 * default export.
 * @throws PolicyLoadError when the file is missing, fails to import or exports no policy.
 * @throws PolicyError when the policy does not validate.
 */
export async function loadPolicyFile(file: string): Promise<PolicyIR> {
  return lowerPolicy(await importPolicySpec(file));
}

/** The default export of a policy file, unvalidated. @throws PolicyLoadError */
export async function importPolicySpec(file: string): Promise<unknown> {
  const abs = resolve(file);
  if (!existsSync(abs)) throw new PolicyLoadError(abs, `policy file not found: ${abs}`);
  let mod: Record<string, unknown>;
  try {
    // The file's version in the URL: ESM caches modules by URL for the life of the process, and a
    // long-lived process (the supervisor applying an edited policy) must read the file as it is now.
    const url = `${pathToFileURL(abs).href}?v=${createHash('sha256').update(readFileSync(abs)).digest('hex').slice(0, 16)}`;
    try {
      mod = (await import(url)) as Record<string, unknown>;
    } catch (err) {
      // A policy in a directory whose package.json is not "type": "module" (or that has none) is
      // compiled as CommonJS, which import() under the global tsx hook refuses ("require() of ES
      // Module in a cycle"); tsx's own tsImport loads it.
      if (!/require\(\) ES Module|ERR_REQUIRE/.test(String((err as Error)?.message ?? err))) throw err;
      mod = (await tsImport(url, import.meta.url)) as Record<string, unknown>;
    }
    // CommonJS interop wraps the module's exports in `default`.
    const inner = mod.default as Record<string, unknown> | undefined;
    if (inner && typeof inner === 'object' && 'default' in inner && !('name' in inner)) mod = inner;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new PolicyLoadError(abs, `cannot import policy ${abs}: ${why}`, { cause: err });
  }
  if (mod.default === undefined) {
    throw new PolicyLoadError(abs, `policy ${abs} has no default export (write: export default definePolicy({...}))`);
  }
  return mod.default;
}

/** Absolute path of a function's handler: handlers are written relative to the policy file. */
export function resolveHandler(policyFile: string, fn: Pick<FunctionIR, 'handler'>): string {
  return resolve(dirname(resolve(policyFile)), fn.handler);
}
