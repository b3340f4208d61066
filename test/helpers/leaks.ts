/**
 * Leak checks: a test file must leave nothing behind. `snapshot()` before the file's tests and
 * `await leaksSince(before)` after them (with no cleanup of its own in between) compares:
 *
 * - BPF programs, maps and links of every type (by id, `bpftool -j -f`), with their pins and their
 *   holders (every process's fds, read from /proc/PID/fdinfo);
 * - every pin anywhere under bpffs;
 * - cgroups under bpfctl's cgroup roots (`<cgroup2>/bpfctl*`, recursively);
 * - pool files (`/dev/shm/bpfctl-pool-*` and every file on every hugetlbfs mount);
 * - run, temporary and cache directories the tests make (`/tmp/bpfctl-*`, `/run/bpfctl/*`,
 *   `<repo>/.test-*`, `<repo>/.cache/bench/*-<pid>`);
 * - the processes this test process started (descendants, and any process carrying its
 *   BPFCTL_LEAK_OWNER mark in its environment, so a daemon that detached is still ours);
 * - the listening sockets (TCP listen, bound UDP, listening unix) those processes hold;
 * - network namespaces (`ip netns`) and the interfaces of this process's network namespace;
 * - this process's file descriptors by identity (fd number and what it points to).
 *
 * It throws when it cannot look (bpftool missing or failing, /proc unreadable): an empty snapshot
 * would make every check pass.
 *
 * **Whose is it.** Other test runs share this machine and run at the same time, so "new since the
 * snapshot" is not "ours". The rule, applied to everything that appeared since the snapshot:
 * 1. Names that carry a test run's pid (`bpfctl-test-<pid>`, `bpfctl-objtest-<pid>`,
 *    `bpfctl-objects-<pid>`, pool names `test-<pid>-`, netns and
 *    veth names `bt<pid % 100000><letter>`) belong to that run: ours if the pid is this process
 *    (or one of its processes), another run's otherwise.
 * 2. A BPF object pinned under a path of ours is ours. One held by a process of ours is ours; one
 *    held only by other processes (or pinned only under another run's paths) is theirs.
 * 3. A BPF object with no holder and no pin is kept alive by what uses it: a map by the programs
 *    that use it, a program by the maps it uses (an XDP or sk_msg program attached and released is
 *    still tied to its maps, which its loader holds or pinned). It takes their owner; if none of
 *    them has one, it is an orphan that appeared during the file: a leak, reported as ours.
 * 4. Without a pid in the name: a pin is its object's (2, 3), and a bpffs directory is theirs when
 *    something of theirs is pinned below it; a cgroup is theirs when it (or one below it) holds a
 *    live process that is not ours; a pool file is theirs when only other processes hold it open
 *    or mapped; a run file `<name>.*` is theirs when `<name>.pid` names a live process not ours.
 *    Anything else that appeared during the file is ours: test code that makes temporary
 *    directories, netns or interfaces must put its pid in the name (the mkdtemp prefixes do).
 * 5. tsx's esbuild service (a child the harness starts on first use and keeps until exit) and the
 *    sockets to it are the harness's, not the test's: only that exact binary in --service mode.
 * Everything is compared by identity (id, path, pid + start time, fd + target), never by count.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { test as uvuTest } from 'uvu';
import { sh } from './sh.ts';

/**
 * uvu swallows an exception thrown by a before() hook (a `return` in its runner's `finally`): the
 * file then "passes" 0 of N tests and the run exits 0. Every kernel test file imports this module
 * after uvu, so its before() hooks are wrapped here: a failure is printed and fails the run.
 */
let hiddenFailure = false;
/** uvu ends with process.exit(code) of its own; this puts the failure back into the exit code. */
process.on('exit', () => {
  if (hiddenFailure) process.exitCode = 1;
});
/** Fail the run even though uvu will not count it as a failed test. */
function failRun(what: string): void {
  // Only at exit: code under test may read process.exitCode meanwhile (an in-process CLI main()).
  hiddenFailure = true;
  process.stderr.write(`\n${what}\n`);
}
for (const t of [uvuTest]) {
  const orig = t.before;
  const wrapped = ((fn: Parameters<typeof orig>[0]) =>
    orig(async (ctx) => {
      try {
        await fn(ctx);
      } catch (err) {
        failRun(`before() hook failed (the run fails; uvu would hide it): ${(err as Error).stack ?? err}`);
        throw err;
      }
    })) as typeof orig;
  wrapped.each = orig.each;
  t.before = wrapped;
}

/** Every process this one starts inherits the mark; leaksSince() finds them by it. */
export const OWNER_ENV = 'BPFCTL_LEAK_OWNER';
process.env[OWNER_ENV] = String(process.pid);

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BPFFS = '/sys/fs/bpf';
/** Pins the kernel's bpf_preload module makes at mount time: not anybody's test. */
const KERNEL_PINS = new Set([`${BPFFS}/maps.debug`, `${BPFFS}/progs.debug`]);

type Kind = 'prog' | 'map' | 'link';
export interface BpfObj {
  kind: Kind;
  id: number;
  type: string;
  name: string;
  pinned: string[];
  /** prog: the maps it uses; link: its program. */
  refs: number[];
}
export interface Proc {
  pid: number;
  start: string;
  ppid: number;
  comm: string;
  cmd: string;
  owner?: number;
}

export interface Snapshot {
  pid: number;
  objects: Map<string, BpfObj>;
  /** `kind:id` -> pids holding an fd to it. */
  holders: Map<string, Set<number>>;
  pins: Set<string>;
  cgroups: Set<string>;
  /** cgroup path -> the pids in it. */
  cgroupProcs: Map<string, number[]>;
  /** `/run`-style pid files (`<dir>/<name>.pid`) -> the pid written in them. */
  pidFiles: Map<string, number>;
  /** fd -> the pid at the other end, for this process's unix sockets (ss -xp). */
  fdPeers: Map<number, number>;
  poolFiles: Set<string>;
  /** pool file path -> pids holding it open or mapped. */
  fileHolders: Map<string, Set<number>>;
  dirs: Set<string>;
  /** All processes on the machine, by pid. */
  procs: Map<number, Proc>;
  /** `pid:start` of the processes of this test process (itself excluded). */
  mine: Map<string, Proc>;
  listening: Map<string, string>;
  netns: Set<string>;
  ifaces: Set<string>;
  fds: Map<number, string>;
}

const key = (kind: Kind, id: number) => `${kind}:${id}`;
const readText = (p: string): string | null => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
};
const list = (d: string): string[] => {
  try {
    return readdirSync(d);
  } catch (err) {
    if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return [];
    throw err;
  }
};
const link = (p: string): string | null => {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
};

/** bpftool, retried a little: a walk can trip over an object being torn down. Throws after. */
function bpftool(kind: Kind): BpfObj[] {
  let last: unknown;
  for (let i = 0; i < 5; i++) {
    try {
      const raw = JSON.parse(sh('bpftool', ['-j', '-f', kind, 'show'])) as Record<string, unknown>[];
      if (!Array.isArray(raw)) throw new Error(`bpftool ${kind} show: not a list`);
      return raw.map((o) => ({
        kind,
        id: o.id as number,
        type: String(o.type ?? '?'),
        name: String(o.name ?? ''),
        pinned: (o.pinned as string[] | undefined) ?? [],
        refs: kind === 'prog' ? ((o.map_ids as number[] | undefined) ?? []) : kind === 'link' && typeof o.prog_id === 'number' ? [o.prog_id] : [],
      }));
    } catch (err) {
      last = err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
  throw new Error(`leak snapshot: cannot list BPF ${kind}s: ${(last as Error).message}`);
}

function processes(): Map<number, Proc> {
  const out = new Map<number, Proc>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const stat = readText(`/proc/${e}/stat`);
    if (!stat) continue;
    const close = stat.lastIndexOf(')');
    const f = stat.slice(close + 2).split(' ');
    const env = readText(`/proc/${e}/environ`) ?? '';
    const mark = new RegExp(`(?:^|\\0)${OWNER_ENV}=(\\d+)`).exec(env);
    out.set(Number(e), {
      pid: Number(e),
      ppid: Number(f[1]),
      start: f[19] ?? '',
      comm: stat.slice(stat.indexOf('(') + 1, close),
      cmd: (readText(`/proc/${e}/cmdline`) ?? '').split('\0').join(' ').trim().slice(0, 160),
      owner: mark ? Number(mark[1]) : undefined,
    });
  }
  return out;
}

/** This process's processes: descendants, and the ones carrying its mark (detached daemons). */
function minePids(procs: Map<number, Proc>, self: number): Set<number> {
  const mine = new Set<number>();
  for (const p of procs.values()) if (p.owner === self && p.pid !== self) mine.add(p.pid);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs.values()) {
      if (p.pid === self || mine.has(p.pid)) continue;
      if (p.ppid === self || mine.has(p.ppid)) {
        mine.add(p.pid);
        grew = true;
      }
    }
  }
  return mine;
}

function walk(dir: string, out: Set<string>, filter: (name: string, depth: number) => boolean = () => true, depth = 0): void {
  for (const e of list(dir)) {
    if (!filter(e, depth)) continue;
    const p = join(dir, e);
    out.add(p);
    let st: ReturnType<typeof statSync> | undefined;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) walk(p, out, filter, depth + 1);
  }
}

function mounts(type: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === type)
    .map((f) => f[1]!);
}

const TCP_STATES: Record<string, string> = { '0A': 'listen' };

/** Listening and bound sockets held by `pids`, read in each process's own network namespace. */
function listeningSockets(pids: Iterable<number>): Map<string, string> {
  const out = new Map<string, string>();
  const tables = new Map<string, Map<string, string>>();
  for (const pid of pids) {
    const ns = link(`/proc/${pid}/ns/net`);
    if (!ns) continue;
    let table = tables.get(ns);
    if (!table) {
      table = new Map();
      for (const proto of ['tcp', 'tcp6', 'udp', 'udp6']) {
        for (const line of (readText(`/proc/${pid}/net/${proto}`) ?? '').split('\n').slice(1)) {
          const f = line.trim().split(/\s+/);
          if (f.length < 10) continue;
          const [local, , st] = [f[1]!, f[2]!, f[3]!];
          if (proto.startsWith('tcp') && !TCP_STATES[st]) continue;
          if (proto.startsWith('udp') && local.endsWith(':0000')) continue;
          table.set(f[9]!, `${proto} ${decodeAddr(local)}`);
        }
      }
      for (const line of (readText(`/proc/${pid}/net/unix`) ?? '').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        // Flags 00010000 = __SO_ACCEPTCON: a listening unix socket.
        if (f.length >= 7 && f[3] === '00010000') table.set(f[6]!, `unix ${f[7] ?? '(unnamed)'}`);
      }
      tables.set(ns, table);
    }
    for (const fd of list(`/proc/${pid}/fd`)) {
      const m = /^socket:\[(\d+)\]$/.exec(link(`/proc/${pid}/fd/${fd}`) ?? '');
      const what = m && table.get(m[1]!);
      if (what) out.set(`${ns} ${what} inode ${m[1]}`, `${what} (pid ${pid}, netns ${ns})`);
    }
  }
  return out;
}

function decodeAddr(hex: string): string {
  const [a, p] = hex.split(':') as [string, string];
  const port = Number.parseInt(p, 16);
  if (a.length === 8) {
    const n = Number.parseInt(a, 16);
    return `${n & 255}.${(n >>> 8) & 255}.${(n >>> 16) & 255}.${n >>> 24}:${port}`;
  }
  return `[${a}]:${port}`;
}

export function openFds(): Map<number, string> {
  const out = new Map<number, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    const t = link(`/proc/self/fd/${fd}`);
    if (t !== null) out.set(Number(fd), t);
  }
  return out;
}

/**
 * Takes the snapshot; throws if it cannot look. uvu swallows an exception thrown in a before()
 * hook (the file then "passes" 0 of N tests with exit code 0), so a failure also fails the run's
 * exit code and says so on stderr (a file made with suite() has no wrapped hooks).
 */
export function snapshot(): Snapshot {
  try {
    return takeSnapshot();
  } catch (err) {
    failRun(`leak snapshot failed (the run fails): ${(err as Error).message}`);
    throw err;
  }
}

function takeSnapshot(): Snapshot {
  const procs = processes();
  const minePidSet = minePids(procs, process.pid);
  const objects = new Map<string, BpfObj>();
  for (const k of ['prog', 'map', 'link'] as const) for (const o of bpftool(k)) objects.set(key(k, o.id), o);

  const poolFiles = new Set<string>();
  for (const f of list('/dev/shm')) if (f.startsWith('bpfctl-pool-')) poolFiles.add(`/dev/shm/${f}`);
  for (const m of mounts('hugetlbfs')) walk(m, poolFiles);

  // Holders: every process's fds (BPF objects by fdinfo id, pool files by path) and mappings.
  const holders = new Map<string, Set<number>>();
  const fileHolders = new Map<string, Set<number>>();
  const hold = (m: Map<string, Set<number>>, k: string, pid: number) => {
    const s = m.get(k) ?? new Set<number>();
    m.set(k, s);
    s.add(pid);
  };
  const hugeMounts = mounts('hugetlbfs');
  const isPoolPath = (t: string) => t.startsWith('/dev/shm/bpfctl-pool-') || hugeMounts.some((m) => t.startsWith(`${m}/`));
  for (const pid of procs.keys()) {
    for (const fd of list(`/proc/${pid}/fd`)) {
      const t = link(`/proc/${pid}/fd/${fd}`);
      if (!t) continue;
      if (t.startsWith('anon_inode:bpf')) {
        const info = readText(`/proc/${pid}/fdinfo/${fd}`) ?? '';
        for (const [k, field] of [
          ['prog', 'prog_id'],
          ['map', 'map_id'],
          ['link', 'link_id'],
        ] as const) {
          const m = new RegExp(`^${field}:\\s*(\\d+)`, 'm').exec(info);
          // A link's fdinfo names its program too (prog_id); only its own id counts for the link.
          if (m && (k !== 'prog' || !/^link_id:/m.test(info))) hold(holders, key(k, Number(m[1])), pid);
        }
      } else if (isPoolPath(t)) hold(fileHolders, t.replace(/ \(deleted\)$/, ''), pid);
    }
    if (poolFiles.size) {
      for (const line of (readText(`/proc/${pid}/maps`) ?? '').split('\n')) {
        const p = line.slice(line.indexOf('/'));
        if (line.includes('/') && isPoolPath(p)) hold(fileHolders, p.replace(/ \(deleted\)$/, ''), pid);
      }
    }
  }

  const pins = new Set<string>();
  walk(BPFFS, pins);
  for (const p of KERNEL_PINS) pins.delete(p);

  const cgroups = new Set<string>();
  for (const root of mounts('cgroup2')) walk(root, cgroups, (name, depth) => (depth === 0 ? name.startsWith('bpfctl') : !name.includes('.')));

  const cgroupProcs = new Map<string, number[]>();
  for (const c of cgroups) {
    const procsText = readText(`${c}/cgroup.procs`) ?? '';
    cgroupProcs.set(c, procsText.split('\n').filter(Boolean).map(Number));
  }

  const dirs = new Set<string>();
  for (const e of list('/tmp')) if (e.startsWith('bpfctl-')) dirs.add(`/tmp/${e}`);
  for (const e of list('/run/bpfctl')) dirs.add(`/run/bpfctl/${e}`);
  const pidFiles = new Map<string, number>();
  for (const d of [...dirs]) {
    for (const f of [d, ...list(d).map((e) => join(d, e))]) {
      if (!f.endsWith('.pid')) continue;
      const n = Number((readText(f) ?? '').trim());
      if (Number.isInteger(n) && n > 0) pidFiles.set(f, n);
    }
  }
  for (const e of list(REPO)) if (e.startsWith('.test-')) dirs.add(join(REPO, e));
  // Benchmark work dirs named after their process (the rest of .cache is a cache, kept on purpose).
  for (const e of list(join(REPO, '.cache/bench'))) if (/-\d+$/.test(e)) dirs.add(join(REPO, '.cache/bench', e));

  const mine = new Map<string, Proc>();
  for (const pid of minePidSet) {
    const p = procs.get(pid)!;
    mine.set(`${pid}:${p.start}`, p);
  }

  // Which process is at the other end of each of this process's unix sockets (the stdio of a
  // child, e.g. tsx's esbuild service).
  const fdPeers = new Map<number, number>();
  const byInode = new Map<string, number>();
  const peerOf = new Map<number, string>();
  for (const line of sh('ss', ['-xpH']).split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    for (const m of line.matchAll(/pid=(\d+),fd=(\d+)/g)) {
      byInode.set(f[5]!, Number(m[1]));
      if (Number(m[1]) === process.pid) peerOf.set(Number(m[2]), f[7]!);
    }
  }
  for (const [fd, peer] of peerOf) {
    const pid = byInode.get(peer);
    if (pid !== undefined) fdPeers.set(fd, pid);
  }

  const netnsOut = sh('ip', ['netns', 'list']);
  const ifaces = JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string; ifindex: number }[];
  return {
    pid: process.pid,
    objects,
    holders,
    pins,
    cgroups,
    cgroupProcs,
    pidFiles,
    fdPeers,
    poolFiles,
    fileHolders,
    dirs,
    procs,
    mine,
    listening: listeningSockets([process.pid, ...minePidSet]),
    netns: new Set(
      netnsOut
        .split('\n')
        .map((l) => l.split(' ')[0] ?? '')
        .filter(Boolean),
    ),
    ifaces: new Set(ifaces.map((i) => i.ifname)),
    fds: openFds(),
  };
}

/**
 * The test run a name belongs to, by the pid in it: 'mine', 'theirs', or null (no pid in it).
 * `mine` is every pid of this process and its processes, seen now or at the snapshot.
 */
function runOf(name: string, self: number, mine: Set<number>): 'mine' | 'theirs' | null {
  const full = /bpfctl-(?:test|objtest|objects)-(\d+)/.exec(name) ?? /(?:^|[/.-])test-(\d+)-/.exec(name) ?? /\.cache\/bench\/[a-z-]+-(\d+)$/.exec(name);
  if (full) return Number(full[1]) === self || mine.has(Number(full[1])) ? 'mine' : 'theirs';
  const short = /(?:^|\/)bt(\d+)[a-z]/.exec(name);
  if (short) return Number(short[1]) === self % 100000 ? 'mine' : 'theirs';
  return null;
}

/**
 * Empty: no entry but directories in `keep` that are empty themselves; for a cgroup, no child
 * cgroup and no process (its control files aside).
 */
function isEmptyDir(d: string, keep: ReadonlySet<string> = new Set()): boolean {
  const procs = readText(`${d}/cgroup.procs`);
  if (procs?.trim()) return false;
  return list(d).every((e) => {
    const p = join(d, e);
    let dir = false;
    try {
      dir = statSync(p).isDirectory();
    } catch {
      return true;
    }
    if (dir) return keep.has(p) && isEmptyDir(p, keep);
    return procs !== null; // a cgroup's control files
  });
}

/** Who a pid or a name belongs to, for one comparison. */
interface Judge {
  self: number;
  mine(pid: number): boolean;
  run(name: string): 'mine' | 'theirs' | null;
}

/** Everything that appeared between `before` and `now` and is this process's (see the header). */
export function compare(before: Snapshot, now: Snapshot, opts: LeakOptions = {}): string[] {
  const self = before.pid;
  const minePids = new Set<number>([self, ...[...before.mine.values(), ...now.mine.values()].map((p) => p.pid)]);
  return judge(before, now, opts, { self, mine: (p) => minePids.has(p), run: (n) => runOf(n, self, minePids) });
}

function judge(before: Snapshot, now: Snapshot, opts: LeakOptions, j: Judge): string[] {
  const self = j.self;
  const problems: string[] = [];
  const who = (pids: Iterable<number>) =>
    [...pids].map((p) => `${now.procs.get(p)?.comm ?? '?'}:${p}${p === self ? ' (this process)' : ''}`).join(' ');

  // BPF objects: owner by pin, then holder, then (for unheld, unpinned ones) what they are tied to.
  const owner = new Map<string, 'mine' | 'theirs' | null>();
  const ownerOf = (k: string, seen = new Set<string>()): 'mine' | 'theirs' | null => {
    if (owner.has(k)) return owner.get(k)!;
    const o = now.objects.get(k);
    if (!o || seen.has(k)) return null;
    seen.add(k);
    let res: 'mine' | 'theirs' | null = null;
    // A pid in a pin's path decides; then the holders; then what it is tied to; a pin without a
    // pid in it, alone, is ours.
    const pinRuns = o.pinned.map((p) => j.run(p));
    const held = [...(now.holders.get(k) ?? [])];
    if (pinRuns.includes('mine') || held.some((p) => j.mine(p))) res = 'mine';
    else if (pinRuns.includes('theirs') || held.length) res = 'theirs';
    else {
      // Tied to: a map by the programs using it, a program by its maps and its links.
      const tied: string[] = [];
      for (const x of now.objects.values()) {
        if (o.kind === 'map' && x.kind === 'prog' && x.refs.includes(o.id)) tied.push(key('prog', x.id));
        if (o.kind === 'prog' && x.kind === 'link' && x.refs.includes(o.id)) tied.push(key('link', x.id));
      }
      if (o.kind === 'prog') for (const m of o.refs) tied.push(key('map', m));
      const owners = tied.map((t) => ownerOf(t, seen));
      res = owners.includes('mine') ? 'mine' : owners.includes('theirs') ? 'theirs' : o.pinned.length ? byNeighbours(o) : null;
    }
    owner.set(k, res);
    return res;
  };
  // A pin that says nothing itself (no pid, no holder, nothing tied to it, e.g. a policy's
  // manifest) belongs with the pins next to it: the nearest directory above it (below bpffs)
  // where other objects are pinned decides, theirs if any of those is theirs. Alone: ours.
  const visiting = new Set<BpfObj>();
  function byNeighbours(o: BpfObj): 'mine' | 'theirs' {
    if (visiting.has(o)) return 'mine';
    visiting.add(o);
    try {
      for (const p of o.pinned) {
        for (let d = dirname(p); d.startsWith(`${BPFFS}/`); d = dirname(d)) {
          const near = [...now.objects].filter(([, x]) => x !== o && x.pinned.some((q) => q.startsWith(`${d}/`)));
          if (!near.length) continue;
          const owners = near.map(([k]) => ownerOf(k));
          return owners.includes('theirs') && !owners.includes('mine') ? 'theirs' : 'mine';
        }
      }
      return 'mine';
    } finally {
      visiting.delete(o);
    }
  }
  const leaked: Record<Kind, string[]> = { prog: [], map: [], link: [] };
  for (const [k, o] of now.objects) {
    if (before.objects.has(k)) continue;
    const res = ownerOf(k);
    if (res === 'theirs') continue;
    const held = now.holders.get(k);
    const how = held?.size ? `held by ${who(held)}` : o.pinned.length ? `pinned at ${o.pinned.join(', ')}` : 'no holder and no pin (attached, or tied to another leaked object)';
    leaked[o.kind].push(`${o.id}=${o.type}/${o.name || '?'} ${how}`);
  }
  for (const k of ['prog', 'map', 'link'] as const) {
    if (leaked[k].length) problems.push(`${k}s still loaded: ${leaked[k].join('; ')}`);
  }

  const fixtures = new Set((opts.fixtures ?? []).flatMap((f) => [f, resolve(f)]));
  const fresh = (a: Set<string>, b: Set<string>) => [...b].filter((x) => !a.has(x) && !fixtures.has(x) && j.run(x) !== 'theirs');
  const keep = new Set([...(opts.pinDirs ?? []), ...(opts.ownDirs ?? [])].map((d) => resolve(d)));
  const kept = (p: string) => keep.has(p) && isEmptyDir(p, keep);
  // A pin is its object's; a directory is theirs when something of theirs is pinned below it.
  const pinOwner = new Map<string, 'mine' | 'theirs' | null>();
  for (const [k, o] of now.objects) for (const p of o.pinned) pinOwner.set(p, ownerOf(k));
  const theirPins = [...pinOwner].filter(([, w]) => w === 'theirs').map(([p]) => p);
  const pins = fresh(before.pins, now.pins).filter((p) => !kept(p) && pinOwner.get(p) !== 'theirs' && !theirPins.some((t) => t.startsWith(`${p}/`)));
  if (pins.length) problems.push(`pins left: ${pins.join(', ')}`);
  // A cgroup is theirs when it or one below it holds a live process that is not ours.
  const foreignIn = (c: string) =>
    [...now.cgroupProcs].some(([d, ps]) => (d === c || d.startsWith(`${c}/`)) && ps.some((p) => !j.mine(p) && now.procs.has(p)));
  const cgroups = fresh(before.cgroups, now.cgroups).filter((p) => !kept(p) && !foreignIn(p));
  if (cgroups.length) problems.push(`cgroups left: ${cgroups.join(', ')}`);
  const pools = fresh(before.poolFiles, now.poolFiles).filter((f) => {
    const h = [...(now.fileHolders.get(f) ?? [])];
    return !h.length || h.some((p) => j.mine(p));
  });
  if (pools.length) problems.push(`pool files left: ${pools.map((f) => (now.fileHolders.get(f)?.size ? `${f} (held by ${who(now.fileHolders.get(f)!)})` : f)).join(', ')}`);
  // A run file (<name>.pid, .sock, ...) is theirs when <name>.pid names a live process not ours.
  const runFileTheirs = (p: string) => {
    const pid = now.pidFiles.get(p.replace(/\.[a-z]+$/, '.pid'));
    return pid !== undefined && now.procs.has(pid) && !j.mine(pid);
  };
  const dirs = fresh(before.dirs, now.dirs).filter((p) => !kept(p) && !runFileTheirs(p));
  if (dirs.length) problems.push(`run/temporary/cache directories left: ${dirs.join(', ')}`);
  // tsx's esbuild service is the test harness's own helper, started on first use and kept until
  // exit: not a leak of the test (exactly that binary, in --service mode, and its stdio sockets).
  const harness = new Set([...now.mine.values()].filter((p) => /\/node_modules\/@esbuild\/[^/]+\/bin\/esbuild --service=/.test(p.cmd)).map((p) => p.pid));
  const procs = [...now.mine].filter(([k, p]) => !before.mine.has(k) && !harness.has(p.pid)).map(([, p]) => `${p.pid} ${p.comm}: ${p.cmd}`);
  if (procs.length) problems.push(`processes left: ${procs.join('; ')}`);
  const socks = [...now.listening].filter(([k]) => !before.listening.has(k)).map(([, v]) => v);
  if (socks.length) problems.push(`listening sockets left: ${socks.join('; ')}`);
  const netns = fresh(before.netns, now.netns);
  if (netns.length) problems.push(`network namespaces left: ${netns.join(', ')}`);
  const ifaces = fresh(before.ifaces, now.ifaces);
  if (ifaces.length) problems.push(`interfaces left: ${ifaces.join(', ')}`);
  const fds = [...now.fds]
    .filter(([fd, t]) => before.fds.get(fd) !== t && !harness.has(now.fdPeers.get(fd) ?? -1))
    .map(([fd, t]) => `${fd} -> ${t}`);
  if (fds.length) problems.push(`file descriptors left open: ${fds.join(', ')}`);
  return problems;
}

/**
 * What test runs left on the machine, with nothing to compare against (the final check, after the
 * suite's processes are gone): the same rule as compare(), where "ours" is every finished run's.
 * A leftover process carries the mark of a test process that is no longer alive; a name with a
 * pid is a finished run's unless that pid is alive; a name without one is a leftover; an object
 * held or tied only to live processes (another run still going, the system's own) is theirs.
 * Pins, cgroups, pool files, directories, netns and `bt*` interfaces count in full.
 */
export function leftovers(now: Snapshot = snapshot()): string[] {
  const alive = (pid: number) => now.procs.has(pid);
  const left = new Set<number>();
  for (const p of now.procs.values()) if (p.owner !== undefined && !alive(p.owner)) left.add(p.pid);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of now.procs.values()) {
      if (!left.has(p.pid) && left.has(p.ppid)) {
        left.add(p.pid);
        grew = true;
      }
    }
  }
  const liveOther = (pid: number) => alive(pid) && !left.has(pid) && pid !== now.pid;
  const run = (name: string): 'mine' | 'theirs' | null => {
    const full = /bpfctl-(?:test|objtest|objects)-(\d+)/.exec(name) ?? /(?:^|[/.-])test-(\d+)-/.exec(name) ?? /\.cache\/bench\/[a-z-]+-(\d+)$/.exec(name);
    if (full) return liveOther(Number(full[1])) ? 'theirs' : 'mine';
    const short = /(?:^|\/)bt(\d+)[a-z]/.exec(name);
    if (short) return [...now.procs.keys()].some((p) => p % 100000 === Number(short[1]) && liveOther(p)) ? 'theirs' : 'mine';
    return null;
  };
  const mine = new Map<string, Proc>();
  for (const pid of left) mine.set(`${pid}:${now.procs.get(pid)!.start}`, now.procs.get(pid)!);
  const empty: Snapshot = {
    ...now,
    objects: new Map(),
    pins: new Set(),
    cgroups: new Set(),
    poolFiles: new Set(),
    dirs: new Set(),
    mine: new Map(),
    listening: now.listening,
    netns: new Set(),
    // The machine's own interfaces are the ones without a test's prefix.
    ifaces: new Set([...now.ifaces].filter((i) => !/^(bt\d|xdpt)/.test(i))),
    fds: now.fds,
  };
  return judge(empty, { ...now, mine }, {}, { self: -1, mine: (p) => left.has(p), run });
}

export interface LeakOptions {
  /**
   * Directories (bpffs, cgroup, run) the test file made itself and removes after the check with
   * removeOwnDirs(): they may still exist if empty (a cgroup: no child cgroup, no process).
   * Everything under them counts.
   */
  ownDirs?: string[];
  /** The same as ownDirs (the older name). */
  pinDirs?: string[];
  /**
   * The test's own fixtures still up at the check, removed after it (then check again without
   * them): network namespace and interface names, temporary directories. Only the named entry is
   * let through: pins, programs and everything else inside or attached to them still count.
   */
  fixtures?: string[];
  /** How long to wait for deferred teardown before judging (ms). */
  waitMs?: number;
}

/**
 * Everything of this process's that appeared since `before` and is still there, as readable
 * strings (empty = clean). Teardown is partly deferred (RCU for BPF objects, process exit, socket
 * close on the event loop), so it looks again for up to `waitMs` before judging, letting the event
 * loop run meanwhile. Call it before the file's own cleanup, then remove its empty `pinDirs`.
 */
export async function leaksSince(before: Snapshot, opts: LeakOptions = {}): Promise<string[]> {
  const deadline = Date.now() + (opts.waitMs ?? 3000);
  for (;;) {
    const problems = compare(before, snapshot(), opts);
    if (!problems.length || Date.now() >= deadline) return problems;
    await sleep(100);
  }
}

/**
 * After a clean check: remove the test's own directories, deepest first, non-recursively, when
 * they are empty (one still holding what was there before the file's snapshot stays).
 */
export function removeOwnDirs(dirs: readonly string[]): void {
  for (const d of [...dirs].map((x) => resolve(x)).sort((a, b) => b.length - a.length)) {
    if (existsSync(d) && isEmptyDir(d)) rmdirSync(d);
  }
}

/** For leak-check.test.ts: whether a hidden failure was recorded, and to clear the one it provoked. */
export const hiddenFailures = {
  get recorded(): boolean {
    return hiddenFailure;
  },
  clear(): void {
    hiddenFailure = false;
  },
};
