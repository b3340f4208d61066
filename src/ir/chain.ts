/**
 * The function-chain part of the IR: functions, routes, gateway and pool as plain data with ids
 * assigned, and the checks that turn a user's spec into it. Checks report every problem they find
 * (with the path to it) to an `Issues` sink (src/ir/issues.ts, the engine XDP shares) instead of
 * stopping at the first, so a user fixes a policy in one round.
 */
import {
  GATEWAY_ID,
  GATEWAY_NAME,
  MAX_BUFFER_COUNT,
  MAX_BUFFER_SIZE,
  MAX_HOPS,
  MAX_IN_FLIGHT,
  MAX_INSTANCES,
  MAX_POOL_BYTES,
  MAX_ROUTES,
  MAX_USER_FUNCTIONS,
  MIN_BUFFER_SIZE,
} from './chain-limits.ts';
import { ROUTE_METHODS, type RouteMethod } from '../schema/chain-maps.ts';
import { checkKeys, describe, type Issues, isPlainObject, type Path, type PathSegment } from './issues.ts';
import { lowerPlacement, type PlacementIR } from './placement.ts';

export type { Issues, PathSegment } from './issues.ts';

/** What a route accepts when its policy does not say: POST, since a route runs functions (side effects). */
export const DEFAULT_METHODS: RouteMethod[] = ['POST'];

export interface FunctionIR {
  /** 1..N in policy order (0 is the gateway). */
  id: number;
  name: string;
  instances: number;
  /** As written in the policy: relative to the policy file. */
  handler: string;
  language: 'ts' | 'c';
  /** null: the runtime's default. */
  maxInFlight: number | null;
  /** Present only when the policy places the function (multi-node, src/ir/placement.ts). */
  placement?: PlacementIR;
}

/** Which HTTP gateway runs: bpfctl's Node one, or the native one in C (docs/gateway-native.md). */
export type GatewayEngine = 'node' | 'native';
export const GATEWAY_ENGINES: readonly GatewayEngine[] = ['node', 'native'];

export interface GatewayIR {
  id: 0;
  name: 'gateway';
  /** Gateway processes (the policy's `processes`, or its older name `instances`). */
  instances: number;
  engine: GatewayEngine;
}

export interface RouteIR {
  /** 0..R-1 in policy order: the key in the `routes` map and the descriptor's `route`. */
  id: number;
  name: string;
  /** Function names in visiting order. */
  functions: string[];
  /** The same as function ids: `struct bpfctl_route.fn`. */
  hops: number[];
  /** HTTP methods the gateway accepts for it (default POST); others get 405. */
  methods: RouteMethod[];
}

export interface PoolIR {
  bufferSize: number;
  bufferCount: number;
}

const C_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ROUTE_PATH = /^\/[A-Za-z0-9._~\-/]*$/;
const MAX_NAME = 32;
const MAX_ROUTE_NAME = 64;
const C_KEYWORDS = new Set(
  'auto break case char const continue default do double else enum extern float for goto if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while _Bool'.split(
    ' ',
  ),
);

function checkInt(v: unknown, min: number, max: number, path: Path, what: string, issues: Issues): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    issues.add(path, `${what} must be an integer, got ${describe(v)}`);
    return undefined;
  }
  if (v < min || v > max) {
    issues.add(path, `${what} must be between ${min} and ${max}, got ${v}`);
    return undefined;
  }
  return v;
}

export function lowerFunctions(spec: unknown, issues: Issues): FunctionIR[] {
  const path = ['functions'];
  if (!isPlainObject(spec)) {
    issues.add(path, `functions must be an object of name -> { instances, handler }, got ${describe(spec)}`);
    return [];
  }
  const names = Object.keys(spec);
  if (names.length === 0) issues.add(path, 'a policy needs at least one function');
  if (names.length > MAX_USER_FUNCTIONS) issues.add(path, `too many functions: ${names.length} (at most ${MAX_USER_FUNCTIONS})`);
  const seen = new Map<string, string>();
  const out: FunctionIR[] = [];
  for (const name of names) {
    const p = [...path, name];
    if (!C_IDENT.test(name) || name.length > MAX_NAME) {
      issues.add(p, `function name '${name}' must be a C identifier of at most ${MAX_NAME} characters ([A-Za-z_][A-Za-z0-9_]*)`);
    } else if (C_KEYWORDS.has(name)) {
      issues.add(p, `function name '${name}' is a C keyword`);
    }
    const folded = name.toLowerCase();
    if (folded === GATEWAY_NAME) {
      issues.add(p, `function name '${name}' is reserved: function 0 is the gateway`);
    } else if (seen.has(folded)) {
      issues.add(p, `duplicate function name '${name}' (same as '${seen.get(folded)}' apart from case; handler files and pins would collide)`);
    }
    seen.set(folded, name);
    const f = spec[name];
    if (!isPlainObject(f)) {
      issues.add(p, `function '${name}' must be an object { instances, handler }, got ${describe(f)}`);
      continue;
    }
    checkKeys(f, ['instances', 'handler', 'language', 'maxInFlight', 'placement'], p, issues);
    const instances = checkInt(f.instances, 1, MAX_INSTANCES, [...p, 'instances'], 'instances', issues) ?? 1;
    let handler = '';
    if (typeof f.handler !== 'string' || f.handler.trim() === '') {
      issues.add([...p, 'handler'], `handler must be a non-empty path to the handler module, got ${describe(f.handler)}`);
    } else {
      handler = f.handler;
    }
    // A `.c` handler is C unless the policy says otherwise; anything else is TypeScript/JavaScript.
    let language: 'ts' | 'c' = handler.endsWith('.c') ? 'c' : 'ts';
    if (f.language !== undefined) {
      if (f.language === 'ts' || f.language === 'c') language = f.language;
      else issues.add([...p, 'language'], `language must be 'ts' or 'c', got ${describe(f.language)}`);
    }
    let maxInFlight: number | null = null;
    if (f.maxInFlight !== undefined) maxInFlight = checkInt(f.maxInFlight, 1, MAX_IN_FLIGHT, [...p, 'maxInFlight'], 'maxInFlight', issues) ?? null;
    const placement = f.placement === undefined ? undefined : lowerPlacement(f.placement, instances, [...p, 'placement'], issues);
    // Only when given: a policy without placement lowers to the IR (and hash) it always had.
    out.push({ id: out.length + 1, name, instances, handler, language, maxInFlight, ...(placement ? { placement } : {}) });
  }
  return out;
}

export function lowerRoutes(spec: unknown, functions: readonly FunctionIR[], issues: Issues): RouteIR[] {
  const path = ['routes'];
  if (!isPlainObject(spec)) {
    issues.add(path, `routes must be an object of route -> [function, ...], got ${describe(spec)}`);
    return [];
  }
  const names = Object.keys(spec);
  if (names.length === 0) issues.add(path, 'a policy needs at least one route');
  if (names.length > MAX_ROUTES) issues.add(path, `too many routes: ${names.length} (at most ${MAX_ROUTES})`);
  const byName = new Map(functions.map((f) => [f.name, f.id]));
  const seen = new Map<string, string>();
  const out: RouteIR[] = [];
  for (const name of names) {
    const p = [...path, name];
    const isPath = name.startsWith('/');
    if (name.length > MAX_ROUTE_NAME || !(isPath ? ROUTE_PATH.test(name) : C_IDENT.test(name))) {
      issues.add(
        p,
        `route name '${name}' must be a C identifier or a path like '/hello' ([A-Za-z0-9._~-/] after the leading '/'), at most ${MAX_ROUTE_NAME} characters`,
      );
    }
    // '/a' and '/a/' reach the same handler in every HTTP router users know: one route, not two.
    const canonical = isPath && name.length > 1 ? name.replace(/\/+$/, '') : name;
    if (seen.has(canonical)) issues.add(p, `duplicate route '${name}' (same as '${seen.get(canonical)}')`);
    seen.set(canonical, name);
    let hops: unknown = spec[name];
    let methods: RouteMethod[] = [...DEFAULT_METHODS];
    let hp: PathSegment[] = p;
    if (isPlainObject(hops)) {
      // The long form: { functions: [...], methods: ['GET', 'POST'] }.
      const obj = hops;
      checkKeys(obj, ['functions', 'methods'], p, issues);
      methods = lowerMethods(obj.methods, [...p, 'methods'], issues);
      hops = obj.functions;
      hp = [...p, 'functions'];
    }
    if (!Array.isArray(hops)) {
      issues.add(hp, `route '${name}' must be an array of function names or { functions, methods }, got ${describe(hops)}`);
      continue;
    }
    if (hops.length === 0) issues.add(hp, `route '${name}' is empty: it must visit at least one function`);
    if (hops.length > MAX_HOPS) issues.add(hp, `route '${name}' has ${hops.length} hops (at most ${MAX_HOPS})`);
    const ids: number[] = [];
    const fnames: string[] = [];
    // A plain loop, not forEach: forEach skips the holes of a sparse array (new Array(3)).
    for (let i = 0; i < hops.length; i++) {
      const h: unknown = hops[i];
      const id = typeof h === 'string' ? byName.get(h) : undefined;
      if (id === undefined) {
        const known = functions.map((f) => f.name).join(', ') || 'none';
        issues.add([...hp, i], `route '${name}' hop ${i} names unknown function ${describe(h)} (functions: ${known})`);
        continue;
      }
      ids.push(id);
      fnames.push(h as string);
    }
    out.push({ id: out.length, name, functions: fnames, hops: ids, methods });
  }
  return out;
}

/** HTTP methods of a route: a non-empty list of ROUTE_METHODS, stored upper-case and in that order. */
export function lowerMethods(spec: unknown, path: PathSegment[], issues: Issues): RouteMethod[] {
  if (spec === undefined) return [...DEFAULT_METHODS];
  if (!Array.isArray(spec) || spec.length === 0) {
    issues.add(path, `methods must be a non-empty array of HTTP methods (${ROUTE_METHODS.join(', ')}), got ${describe(spec)}`);
    return [...DEFAULT_METHODS];
  }
  const seen = new Set<RouteMethod>();
  for (let i = 0; i < spec.length; i++) {
    const m: unknown = spec[i];
    const up = typeof m === 'string' ? m.toUpperCase() : m;
    if (typeof up !== 'string' || !(ROUTE_METHODS as readonly string[]).includes(up)) {
      issues.add([...path, i], `unknown HTTP method ${describe(m)} (one of ${ROUTE_METHODS.join(', ')})`);
      continue;
    }
    seen.add(up as RouteMethod);
  }
  // HEAD is GET without the body: a route that answers GET answers HEAD (RFC 9110 9.3.2).
  if (seen.has('GET')) seen.add('HEAD');
  return ROUTE_METHODS.filter((m) => seen.has(m));
}

export function lowerPool(spec: unknown, issues: Issues): PoolIR {
  const path = ['pool'];
  const fallback = { bufferSize: 4096, bufferCount: 1 };
  if (!isPlainObject(spec)) {
    issues.add(path, `pool must be an object { bufferSize, bufferCount }, got ${describe(spec)}`);
    return fallback;
  }
  checkKeys(spec, ['bufferSize', 'bufferCount'], path, issues);
  const size = checkInt(spec.bufferSize, MIN_BUFFER_SIZE, MAX_BUFFER_SIZE, [...path, 'bufferSize'], 'bufferSize', issues);
  if (size !== undefined && (size & (size - 1)) !== 0) {
    issues.add([...path, 'bufferSize'], `bufferSize must be a power of two (buffers are aligned to it), got ${size}`);
  }
  const count = checkInt(spec.bufferCount, 1, MAX_BUFFER_COUNT, [...path, 'bufferCount'], 'bufferCount', issues);
  if (size !== undefined && count !== undefined && size * count > MAX_POOL_BYTES) {
    issues.add(path, `pool of ${count} x ${size} B = ${size * count} B exceeds ${MAX_POOL_BYTES} B (1 GiB)`);
  }
  return { bufferSize: size ?? fallback.bufferSize, bufferCount: count ?? fallback.bufferCount };
}

/**
 * The gateway a policy gets when it does not choose: the native (C) one, measured ~3x the Node
 * gateway's requests/s on the same chain (BENCHMARKS.md, chain section).
 */
export const DEFAULT_GATEWAY_ENGINE: GatewayEngine = 'native';

export function lowerGateway(spec: unknown, issues: Issues): GatewayIR {
  const gw: GatewayIR = { id: GATEWAY_ID, name: GATEWAY_NAME, instances: 1, engine: DEFAULT_GATEWAY_ENGINE };
  if (spec === undefined) return gw;
  if (!isPlainObject(spec)) {
    issues.add(['gateway'], `gateway must be an object { engine, processes }, got ${describe(spec)}`);
    return gw;
  }
  checkKeys(spec, ['engine', 'processes', 'instances'], ['gateway'], issues);
  if (spec.engine !== undefined) {
    if (typeof spec.engine === 'string' && (GATEWAY_ENGINES as readonly string[]).includes(spec.engine)) gw.engine = spec.engine as GatewayEngine;
    else issues.add(['gateway', 'engine'], `engine must be one of ${GATEWAY_ENGINES.map((e) => `'${e}'`).join(', ')}, got ${describe(spec.engine)}`);
  }
  // `instances` is the older name of `processes`, kept working; one policy says one of them.
  if (spec.processes !== undefined && spec.instances !== undefined) {
    issues.add(['gateway', 'instances'], 'give processes or instances (its older name), not both');
  } else if (spec.processes !== undefined) {
    gw.instances = checkInt(spec.processes, 1, MAX_INSTANCES, ['gateway', 'processes'], 'processes', issues) ?? 1;
  } else if (spec.instances !== undefined) {
    gw.instances = checkInt(spec.instances, 1, MAX_INSTANCES, ['gateway', 'instances'], 'instances', issues) ?? 1;
  }
  return gw;
}
