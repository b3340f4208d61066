/**
 * The packet-chain part of the IR (docs/packet-chains.md): packet functions, packet chains and
 * the ports (interfaces) pktio binds AF_XDP sockets on, as plain data with ids, and the checks
 * that turn a user's `packetFunctions` and `packetChains` into it. Ids are 0-based in declaration
 * order: they index the packet plane's tables (function `id` owns rings `1 + id * 32 + inst`,
 * chain `id` is what the classifier writes into a frame's metadata, port `id` is the
 * descriptor's `port`).
 *
 * Lowering runs in two steps around the xdp sections: functions and chains first (the xdp rules
 * resolve chain names to ids through `chainNames`), then `packetPorts`, which needs the xdp
 * sections that steer frames into chains.
 */
import { MAX_CHAINS, MAX_FNS, MAX_HOPS, MAX_INST, MAX_PORTS, NAME_LEN } from '../schema/packet-layout.ts';
import { checkKeys, describe, type Issues, isPlainObject, type Path } from './issues.ts';

export interface PacketFunctionIR {
  /** 0..N-1 in policy order: the packet plane's function slot. */
  id: number;
  name: string;
  /**
   * 'c': `handler` built with the packet runtime; 'ts': a TypeScript/JavaScript `handler` run by
   * the TypeScript packet runtime (src/runtime/packet-ts); 'command': a prebuilt program.
   */
  language: 'c' | 'ts' | 'command';
  /** Absolute path of the `.c` (language 'c') or `.ts`/`.js` file (language 'ts'). */
  handler?: string;
  /** argv (language 'command'); argv[0] absolute when the policy gave a path, a bare name to look up on PATH otherwise. */
  command?: string[];
  instances: number;
  /** Environment variables every instance gets, as the policy wrote them. */
  env: Record<string, string>;
}

export type PacketEgressIR = { kind: 'drop' } | { kind: 'tx'; port: number };

export interface PacketChainIR {
  /** 0..N-1 in policy order: the id in the frame's metadata word and the descriptor's `chain`. */
  id: number;
  name: string;
  /** Packet function ids in visiting order (may be empty: straight to the egress). */
  functions: number[];
  egress: PacketEgressIR;
  /** Busy-poll instead of sleeping on the rings. */
  poll: boolean;
  /** Wakeup coalescing: frames wait up to `us` in pktio to share a batch. Absent: none (and absent from the IR, so hashes stay). */
  coalesce?: { us: number };
}

export interface PacketPortIR {
  /** 0..N-1: the descriptor's `port`, the plane's port slot. */
  id: number;
  interface: string;
  /** Its xdp section steers frames into chains (pktio receives on it). */
  ingress: boolean;
  /** Some chain transmits on it. */
  egress: boolean;
}

export interface PacketIR {
  functions: PacketFunctionIR[];
  chains: PacketChainIR[];
  ports: PacketPortIR[];
}

/**
 * Sizes of the packet plane's tables (docs/packet-chains.md, "The packet plane"): what a policy
 * may declare. Chain ids also travel in the descriptor's u8 `chain`, so 255 bounds them whatever
 * the table holds.
 */
export const MAX_PACKET_FUNCTIONS = MAX_FNS;
export const MAX_PACKET_CHAINS = MAX_CHAINS;
export const MAX_PACKET_HOPS = MAX_HOPS;
export const MAX_PACKET_PORTS = MAX_PORTS;
export const MAX_PACKET_INSTANCES = MAX_INST;
export const MAX_CHAIN_ID = 255;
/** Names sit in `char name[32]` of the plane, NUL-terminated. */
export const MAX_PACKET_NAME = NAME_LEN - 1;
/** The longest a coalescing chain's frame may wait (pktio's COALESCE_MAX_US): 10 ms, beyond any NIC's moderation. */
export const MAX_COALESCE_US = 10_000;
/** AF_XDP chunk sizes the kernel accepts for an aligned UMEM: pool buffers become UMEM chunks. */
export const PACKET_BUFFER_SIZES: readonly number[] = [2048, 4096];

const C_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CHAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const ENV_KEY = /^[A-Z_][A-Z0-9_]*$/;
/** Interface names (IFNAMSIZ 16 with the NUL): the one check of xdp sections, tc sections and chain egresses. */
export const IFNAME = /^[^\s/:]{1,15}$/;
const C_KEYWORDS = new Set(
  'auto break case char const continue default do double else enum extern float for goto if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while _Bool'.split(
    ' ',
  ),
);
const TS_EXTENSIONS = /\.(ts|mts|cts|tsx|js|mjs|cjs|jsx)$/;

/**
 * `rel` resolved against the absolute directory `base`, '.' and '..' folded: string work only,
 * so the IR stays a pure function of the spec and the policy's directory.
 */
export function resolveFrom(base: string, rel: string): string {
  const out: string[] = [];
  for (const seg of (rel.startsWith('/') ? rel : `${base}/${rel}`).split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}`;
}

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

const hasNul = (s: string) => s.includes('\0');

function lowerEnv(spec: unknown, path: Path, issues: Issues): Record<string, string> {
  if (spec === undefined) return {};
  if (!isPlainObject(spec)) {
    issues.add(path, `env must be an object of NAME -> string, got ${describe(spec)}`);
    return {};
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec)) {
    const p = [...path, k];
    if (!ENV_KEY.test(k)) issues.add(p, `environment variable name '${k}' must be A-Z, 0-9 and '_', not starting with a digit`);
    else if (k.startsWith('BPFCTL_')) issues.add(p, `environment variable '${k}' is reserved: bpfctl hands its own settings to packet functions in BPFCTL_* variables`);
    else if (typeof v !== 'string') issues.add(p, `environment variable ${k} must be a string, got ${describe(v)}`);
    else if (hasNul(v)) issues.add(p, `environment variable ${k} holds a NUL character (the process environment cannot carry it)`);
    else env[k] = v;
  }
  return env;
}

/** `p` made absolute against the policy's directory, or reported when there is none to use. */
function absolute(p: string, baseDir: string | undefined, path: Path, what: string, issues: Issues): string | undefined {
  if (p.startsWith('/')) return resolveFrom('/', p);
  if (baseDir !== undefined) return resolveFrom(baseDir, p);
  issues.add(path, `${what} '${p}' is relative, and the policy's directory is not known (loadPolicyFile passes it; in code: lowerPolicy(spec, { baseDir }))`);
  return undefined;
}

function lowerHandler(h: unknown, baseDir: string | undefined, path: Path, issues: Issues): { file: string; language: 'c' | 'ts' } | undefined {
  if (typeof h !== 'string' || h.trim() === '' || hasNul(h)) {
    issues.add(path, `handler must be a non-empty path to a .c file (or a .ts/.js one), got ${describe(h)}`);
    return undefined;
  }
  // TypeScript is offered for slow paths (every batch crosses into Node and back): the language
  // follows the file, as for request functions.
  const language = TS_EXTENSIONS.test(h) ? 'ts' : h.endsWith('.c') ? 'c' : undefined;
  if (language === undefined) {
    issues.add(path, `handler must be a .c file (built with the packet runtime) or a .ts/.js file (the TypeScript packet runtime), got ${describe(h)}; a prebuilt program goes in command: [...]`);
    return undefined;
  }
  const file = absolute(h, baseDir, path, 'handler', issues);
  return file === undefined ? undefined : { file, language };
}

function lowerCommand(c: unknown, baseDir: string | undefined, path: Path, issues: Issues): string[] | undefined {
  if (!Array.isArray(c) || c.length === 0) {
    issues.add(path, `command must be a non-empty array (argv: the program, then its arguments), got ${describe(c)}`);
    return undefined;
  }
  const argv: string[] = [];
  let ok = true;
  for (let i = 0; i < c.length; i++) {
    const a: unknown = c[i];
    if (typeof a !== 'string' || hasNul(a) || (i === 0 && a.trim() === '')) {
      issues.add([...path, i], i === 0 ? `command[0] must be the program: a path relative to the policy, or a name on PATH, got ${describe(a)}` : `arguments must be strings without NUL characters, got ${describe(a)}`);
      ok = false;
    } else argv.push(a);
  }
  if (!ok) return undefined;
  // execvp's rule: a name with a '/' is a path (here: relative to the policy), one without is looked up on PATH.
  if (argv[0]!.includes('/')) {
    const exe = absolute(argv[0]!, baseDir, [...path, 0], 'command[0]', issues);
    if (exe === undefined) return undefined;
    argv[0] = exe;
  }
  return argv;
}

/**
 * A name for a packet function: the rule of `functions` (a C identifier, not a C keyword, not
 * 'gateway'), short enough for the plane's name field. Returns false when reported.
 */
function checkFunctionName(name: string, path: Path, issues: Issues): boolean {
  if (!C_IDENT.test(name) || name.length > MAX_PACKET_NAME) {
    issues.add(path, `packet function name '${name}' must be a C identifier of at most ${MAX_PACKET_NAME} characters ([A-Za-z_][A-Za-z0-9_]*)`);
    return false;
  }
  if (C_KEYWORDS.has(name)) {
    issues.add(path, `packet function name '${name}' is a C keyword`);
    return false;
  }
  if (name.toLowerCase() === 'gateway') {
    issues.add(path, `packet function name '${name}' is reserved: function 0 of the request chain is the gateway`);
    return false;
  }
  return true;
}

/**
 * Validates `packetFunctions`. `taken` holds the request chain's function names: one namespace
 * for both (processes, status and metrics name them), compared without case as functions are.
 */
export function lowerPacketFunctions(spec: unknown, taken: readonly string[], baseDir: string | undefined, issues: Issues): PacketFunctionIR[] {
  const path = ['packetFunctions'];
  if (spec === undefined) return [];
  if (!isPlainObject(spec)) {
    issues.add(path, `packetFunctions must be an object of name -> { handler | command, instances?, env? }, got ${describe(spec)}`);
    return [];
  }
  const names = Object.keys(spec);
  if (names.length > MAX_PACKET_FUNCTIONS) issues.add(path, `too many packet functions: ${names.length} (at most ${MAX_PACKET_FUNCTIONS}, the packet plane's function table)`);
  const seen = new Map<string, string>(taken.map((n) => [n.toLowerCase(), `functions.${n}`]));
  const out: PacketFunctionIR[] = [];
  for (const name of names) {
    const p = [...path, name];
    if (checkFunctionName(name, p, issues)) {
      const folded = name.toLowerCase();
      const prev = seen.get(folded);
      if (prev !== undefined) issues.add(p, `duplicate function name '${name}' (also ${prev}): functions and packetFunctions share one namespace, compared without case`);
      else seen.set(folded, `packetFunctions.${name}`);
    }
    const id = out.length;
    const f = spec[name];
    if (!isPlainObject(f)) {
      issues.add(p, `packet function '${name}' must be an object { handler | command, instances?, env? }, got ${describe(f)}`);
      // Still listed, so a chain naming it is not also told the name is unknown.
      out.push({ id, name, language: 'c', instances: 1, env: {} });
      continue;
    }
    checkKeys(f, ['handler', 'command', 'instances', 'env'], p, issues);
    const instances = f.instances === undefined ? 1 : (checkInt(f.instances, 1, MAX_PACKET_INSTANCES, [...p, 'instances'], 'instances', issues) ?? 1);
    const env = lowerEnv(f.env, [...p, 'env'], issues);
    let handler: { file: string; language: 'c' | 'ts' } | undefined;
    let command: string[] | undefined;
    if (f.handler !== undefined && f.command !== undefined) {
      issues.add(p, `packet function '${name}' gives both handler and command: a handler (C or TypeScript, built by bpfctl) or a prebuilt command, one of the two`);
    } else if (f.handler === undefined && f.command === undefined) {
      issues.add(p, `packet function '${name}' needs a handler (a .c file built with the packet runtime, or a .ts/.js file) or a command (a prebuilt program speaking the packet SDK)`);
    } else if (f.handler !== undefined) {
      handler = lowerHandler(f.handler, baseDir, [...p, 'handler'], issues);
    } else {
      command = lowerCommand(f.command, baseDir, [...p, 'command'], issues);
    }
    const language = f.command !== undefined && f.handler === undefined ? 'command' : (handler?.language ?? 'c');
    out.push({ id, name, language, ...(handler !== undefined ? { handler: handler.file } : {}), ...(command !== undefined ? { command } : {}), instances, env });
  }
  return out;
}

/** A chain as lowered before the ports exist: its egress still an interface name. */
export interface PendingChain {
  id: number;
  name: string;
  functions: number[];
  egress: { kind: 'drop' } | { kind: 'tx'; interface: string };
  poll: boolean;
  coalesce?: { us: number };
}

/** What xdp rules resolve `{ chain: name }` against: the declared chains, the broken ones apart. */
export interface ChainNames {
  readonly ids: ReadonlyMap<string, number>;
  /** Declared but invalid: a rule naming one has nothing of its own to report. */
  readonly broken: ReadonlySet<string>;
  /** Every declared name, in policy order (for messages). */
  readonly declared: readonly string[];
  /** `packetChains` itself is invalid (reported): no chain name can be checked. */
  readonly unknown?: true;
}

/** Chain names for lowering xdp sections alone (tests, tools): ids in list order. */
export function chainNamesOf(names: readonly string[]): ChainNames {
  return { ids: new Map(names.map((n, i) => [n, i])), broken: new Set(), declared: [...names] };
}

/**
 * Validates `packetChains` against the packet functions (null: `packetFunctions` was invalid, so
 * the hops' names are not checked); ports are assigned later (`packetPorts`).
 */
export function lowerPacketChains(spec: unknown, functions: readonly PacketFunctionIR[] | null, issues: Issues): { chains: PendingChain[]; names: ChainNames } {
  const path = ['packetChains'];
  const ids = new Map<string, number>();
  const broken = new Set<string>();
  if (spec === undefined) return { chains: [], names: { ids, broken, declared: [] } };
  if (!isPlainObject(spec)) {
    issues.add(path, `packetChains must be an object of name -> { functions, egress, poll?, coalesce? }, got ${describe(spec)}`);
    return { chains: [], names: { ids, broken, declared: [], unknown: true } };
  }
  const names = Object.keys(spec);
  const limit = Math.min(MAX_PACKET_CHAINS, MAX_CHAIN_ID);
  if (names.length > limit) issues.add(path, `too many packet chains: ${names.length} (at most ${limit}, the packet plane's chain table)`);
  const byName = functions ? new Map(functions.map((f) => [f.name, f.id])) : null;
  const chains: PendingChain[] = [];
  for (const [id, name] of names.entries()) {
    // Counts what this chain reports: a chain with a problem is `broken` for the xdp rules.
    let problems = 0;
    const counted: Issues = {
      add(p, m) {
        problems++;
        issues.add(p, m);
      },
    };
    const chain = lowerChain(name, spec[name], id, [...path, name], byName, counted);
    if (chain && problems === 0) {
      chains.push(chain);
      ids.set(name, id);
    } else broken.add(name);
  }
  return { chains, names: { ids, broken, declared: names } };
}

function lowerChain(name: string, c: unknown, id: number, p: Path, byName: ReadonlyMap<string, number> | null, issues: Issues): PendingChain | undefined {
  if (!CHAIN_NAME.test(name) || name.length > MAX_PACKET_NAME) {
    issues.add(p, `packet chain name '${name}' must be 1-${MAX_PACKET_NAME} characters of A-Z, a-z, 0-9, '-', '_', starting with a letter or digit`);
  }
  if (!isPlainObject(c)) {
    issues.add(p, `packet chain '${name}' must be an object { functions, egress, poll?, coalesce? }, got ${describe(c)}`);
    return undefined;
  }
  checkKeys(c, ['functions', 'egress', 'poll', 'coalesce'], p, issues);
  const fp = [...p, 'functions'];
  const fns: number[] = [];
  if (!Array.isArray(c.functions)) issues.add(fp, `functions must be an array of packet function names (may be empty), got ${describe(c.functions)}`);
  else {
    if (c.functions.length > MAX_PACKET_HOPS) issues.add(fp, `packet chain '${name}' has ${c.functions.length} functions (at most ${MAX_PACKET_HOPS}: the plane's hops[${MAX_PACKET_HOPS}])`);
    for (let i = 0; i < c.functions.length; i++) {
      const h: unknown = c.functions[i];
      if (!byName) continue;
      const fid = typeof h === 'string' ? byName.get(h) : undefined;
      if (fid === undefined) {
        const known = [...byName.keys()].join(', ') || 'none';
        issues.add([...fp, i], `packet chain '${name}' hop ${i} names unknown packet function ${describe(h)} (packetFunctions: ${known})`);
      } else fns.push(fid);
    }
  }
  let egress: PendingChain['egress'] = { kind: 'drop' };
  const ep = [...p, 'egress'];
  if (c.egress === 'drop') egress = { kind: 'drop' };
  else if (isPlainObject(c.egress)) {
    checkKeys(c.egress, ['tx'], ep, issues);
    const tx = c.egress.tx;
    if (typeof tx !== 'string' || !IFNAME.test(tx)) issues.add([...ep, 'tx'], `bad interface name ${JSON.stringify(tx) ?? 'nothing'} (1..15 characters, no '/', ':' or spaces)`);
    else egress = { kind: 'tx', interface: tx };
  } else issues.add(ep, `egress must be { tx: 'ifname' } (transmit after the last function) or 'drop', got ${describe(c.egress)}`);
  let poll = false;
  if (c.poll !== undefined) {
    if (typeof c.poll === 'boolean') poll = c.poll;
    else issues.add([...p, 'poll'], `poll must be true (busy-poll) or false (sleep until frames come, the default), got ${describe(c.poll)}`);
  }
  const coalesce = lowerCoalesce(c.coalesce, poll, [...p, 'coalesce'], issues);
  return { id, name, functions: fns, egress, poll, ...(coalesce ? { coalesce } : {}) };
}

function lowerCoalesce(spec: unknown, poll: boolean, path: Path, issues: Issues): { us: number } | undefined {
  if (spec === undefined) return undefined;
  if (!isPlainObject(spec)) {
    issues.add(path, `coalesce must be { us: N } (frames wait up to N microseconds to share a batch), got ${describe(spec)}`);
    return undefined;
  }
  checkKeys(spec, ['us'], path, issues);
  if (spec.us === undefined) {
    issues.add(path, `coalesce needs us: the longest a frame may wait, in microseconds (1..${MAX_COALESCE_US})`);
    return undefined;
  }
  const us = checkInt(spec.us, 1, MAX_COALESCE_US, [...path, 'us'], 'coalesce.us (microseconds)', issues);
  if (us === undefined) return undefined;
  if (poll) {
    issues.add(path, 'coalesce saves wakeups, and a chain with poll: true has none to save (its functions spin): use one or the other');
    return undefined;
  }
  return { us };
}

/** The part of an xdp section `packetPorts` reads. */
export interface SteeringSection {
  readonly index: number;
  readonly interface: string;
  readonly default: { readonly kind: string };
  readonly rules: readonly { readonly action: { readonly kind: string } }[];
}

/** Does the section steer any frame into a packet chain (a rule's action or its default)? */
export function steersToChains(s: SteeringSection): boolean {
  return s.default.kind === 'chain' || s.rules.some((r) => r.action.kind === 'chain');
}

/**
 * The ports: every interface of an xdp section that steers into chains (in section order), then
 * every chain's egress interface (in chain order), each once; and the chains with their egress
 * as a port id.
 */
export function packetPorts(xdp: readonly SteeringSection[], pending: readonly PendingChain[], issues: Issues): { ports: PacketPortIR[]; chains: PacketChainIR[] } {
  const ports: PacketPortIR[] = [];
  const byIface = new Map<string, PacketPortIR>();
  const port = (ifname: string, at: Path): PacketPortIR | undefined => {
    const have = byIface.get(ifname);
    if (have) return have;
    if (ports.length === MAX_PACKET_PORTS) {
      issues.add(at, `interface '${ifname}' would be packet port ${MAX_PACKET_PORTS + 1}: at most ${MAX_PACKET_PORTS} interfaces receive or transmit packet chains' frames (the plane's port table)`);
      return undefined;
    }
    const p: PacketPortIR = { id: ports.length, interface: ifname, ingress: false, egress: false };
    ports.push(p);
    byIface.set(ifname, p);
    return p;
  };
  for (const s of xdp) {
    if (!steersToChains(s)) continue;
    const p = port(s.interface, ['xdp', s.index, 'interface']);
    if (p) p.ingress = true;
  }
  const chains: PacketChainIR[] = [];
  for (const c of pending) {
    let egress: PacketEgressIR = { kind: 'drop' };
    if (c.egress.kind === 'tx') {
      const p = port(c.egress.interface, ['packetChains', c.name, 'egress', 'tx']);
      if (p) {
        p.egress = true;
        egress = { kind: 'tx', port: p.id };
      }
    }
    chains.push({ id: c.id, name: c.name, functions: [...c.functions], egress, poll: c.poll, ...(c.coalesce ? { coalesce: { ...c.coalesce } } : {}) });
  }
  return { ports, chains };
}

