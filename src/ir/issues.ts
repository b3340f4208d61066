/**
 * The one validation engine of the IR. Every check (chains, XDP, live route changes) reports to
 * an `Issues` sink with the path of the node at fault, and goes on, so a user fixes a policy in
 * one round. A check that cannot go on inside one node (an XDP match whose protocol is unknown
 * cannot check its ports) `stop`s that node; `attempt` marks where a node ends, records the
 * problem and lets its siblings be checked. `snapshotSpec` turns whatever a user handed in into
 * plain data first, so no check meets a getter that throws, a proxy, a cycle or a BigInt.
 *
 * A leaf of src/ir (it imports only the shared error base), so every part of the IR can use it
 * without a cycle.
 */
import { BpfctlError } from '../errors.ts';

export interface PolicyIssue {
  path: string;
  message: string;
}

/**
 * A policy that does not validate. `path` points at the first problem (`routes['/hello'][1]`);
 * `issues` holds all of them, and `detail()` lists them one per line.
 */
export class PolicyError extends BpfctlError {
  readonly path: string;
  readonly issues: readonly PolicyIssue[];

  constructor(issues: readonly PolicyIssue[], options?: { policy?: string; cause?: unknown }) {
    const first = issues[0] ?? { path: '(policy)', message: 'invalid policy' };
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
    const where = options?.policy ? `policy ${options.policy}: ` : '';
    super('E_POLICY', `${where}${first.path}: ${first.message}${more}`, { cause: options?.cause });
    this.path = first.path;
    this.issues = issues;
  }

  override detail(): string {
    return this.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), path: this.path, issues: this.issues };
  }
}

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

/** Where validation problems go; `path` segments become `routes['/hello'][1]`. */
export interface Issues {
  add(path: Path, message: string): void;
}

/** An Issues sink that keeps what it is told, in order. */
export class IssueList implements Issues {
  readonly found: PolicyIssue[] = [];
  add(path: Path, message: string): void {
    this.found.push({ path: formatPath(path), message });
  }
  get empty(): boolean {
    return this.found.length === 0;
  }
  /** @throws PolicyError listing every problem, when there is one. */
  throwIfAny(options?: { policy?: string }): void {
    if (this.found.length) throw new PolicyError(this.found, options?.policy ? options : undefined);
  }
}

/** Renders a path the way a user would write it in TypeScript: `functions.upper.instances`, `routes['/a'][1]`. */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg).replace(/^"|"$/g, "'")}]`;
  }
  return out || '(policy)';
}

/** Thrown by `stop`, caught by `attempt`: never escapes the IR. */
class Stop {
  constructor(
    readonly path: Path,
    /** null: the node's problem is reported elsewhere already (a reference to a broken set). */
    readonly message: string | null,
  ) {}
}

/** Ends the check of the current node with one problem (see `attempt`). */
export function stop(path: Path, message: string): never {
  throw new Stop(path, message);
}

/** Ends the check of the current node without a problem of its own: it follows from one already reported. */
export function stopQuietly(path: Path): never {
  throw new Stop(path, null);
}

/** Checks one node: a `stop` inside it is recorded in `issues` and gives undefined. */
export function attempt<T>(issues: Issues, check: () => T): T | undefined {
  try {
    return check();
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
    if (err.message !== null) issues.add(err.path, err.message);
    return undefined;
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value in a message: short, and safe for anything `snapshotSpec` lets through. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** Reports keys the spec does not know: a misspelt option must not be silently ignored. */
export function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], path: Path, issues: Issues, noun = 'setting'): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) issues.add([...path, k], `unknown ${noun} '${k}' (expected one of: ${allowed.join(', ')})`);
  }
}

/** `table[key]` when the table itself has that key (not `toString` from Object.prototype). */
export function own<V>(table: Readonly<Record<string, V>>, key: unknown): V | undefined {
  return typeof key === 'string' && Object.hasOwn(table, key) ? table[key] : undefined;
}

/** Nesting and size far beyond any real policy, so a hostile spec cannot exhaust the stack or memory. */
export const MAX_SPEC_DEPTH = 32;
export const MAX_SPEC_NODES = 2_000_000;

/**
 * A copy of a user's spec as plain data: objects (own enumerable string keys), dense arrays
 * (holes become undefined), strings, finite or not numbers, booleans, null and undefined.
 * Whatever else is there is reported with its path: a getter or proxy trap that throws, a cycle,
 * a BigInt, a symbol, a function, nesting deeper than MAX_SPEC_DEPTH. The checks then read the
 * copy, which can neither throw nor change under them.
 */
export function snapshotSpec(spec: unknown, issues: Issues): unknown {
  const ancestors = new Set<object>();
  let nodes = 0;
  const copy = (v: unknown, path: PathSegment[]): unknown => {
    if (++nodes > MAX_SPEC_NODES) {
      if (nodes === MAX_SPEC_NODES + 1) issues.add(path, `the policy is too large (more than ${MAX_SPEC_NODES} values)`);
      return undefined;
    }
    switch (typeof v) {
      case 'string':
      case 'number':
      case 'boolean':
      case 'undefined':
        return v;
      case 'bigint':
        issues.add(path, `a BigInt (${v}n): write a number`);
        return undefined;
      case 'symbol':
        issues.add(path, 'a symbol: a policy holds plain data');
        return undefined;
      case 'function':
        issues.add(path, 'a function: a policy holds plain data (handlers are file paths)');
        return undefined;
    }
    if (v === null) return null;
    const obj = v as object;
    if (ancestors.has(obj)) {
      issues.add(path, 'a circular reference: this value contains itself');
      return undefined;
    }
    if (path.length >= MAX_SPEC_DEPTH) {
      issues.add(path, `nested deeper than ${MAX_SPEC_DEPTH} levels`);
      return undefined;
    }
    ancestors.add(obj);
    try {
      if (Array.isArray(obj)) {
        const len = obj.length;
        if (!Number.isSafeInteger(len) || len < 0) throw new Error(`bad array length ${String(len)}`);
        if (len > MAX_SPEC_NODES) {
          issues.add(path, `an array of ${len} elements (the policy is too large)`);
          return undefined;
        }
        const out: unknown[] = new Array(len);
        for (let i = 0; i < len; i++) out[i] = read(obj, i, [...path, i]);
        return out;
      }
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(obj)) {
        // defineProperty: an own '__proto__' key stays a key (and is then reported as unknown).
        Object.defineProperty(out, k, { value: read(obj, k, [...path, k]), enumerable: true, writable: true, configurable: true });
      }
      return out;
    } catch (err) {
      issues.add(path, `cannot be read: ${errorText(err)}`);
      return undefined;
    } finally {
      ancestors.delete(obj);
    }
  };
  const read = (obj: object, key: PathSegment, path: PathSegment[]): unknown => {
    let v: unknown;
    try {
      v = (obj as Record<PathSegment, unknown>)[key];
    } catch (err) {
      issues.add(path, `reading it threw: ${errorText(err)}`);
      return undefined;
    }
    return copy(v, path);
  };
  return copy(spec, []);
}

function errorText(err: unknown): string {
  try {
    const m = err instanceof Error ? err.message : String(err);
    return typeof m === 'string' ? m.split('\n')[0]!.slice(0, 200) : 'an error';
  } catch {
    return 'an error that cannot be printed';
  }
}
