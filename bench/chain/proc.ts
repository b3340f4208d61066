/**
 * Processes of the chain bench: spawning them so that none outlives the bench (a registry the
 * bench's exit and signal handlers sweep, and children that exit when their stdin closes, which
 * also covers a bench killed with SIGKILL), and reading their CPU time from /proc.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

const live = new Set<ChildProcess>();

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on every Linux seen). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly name: string;
  /** The next stdout line matching `re` (lines seen before the call count too). */
  line(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Everything the child wrote to stderr so far (for error messages). */
  stderr(): string;
  send(line: string): void;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/**
 * V8 flags for the baselines' HTTP servers: the ones bpfctl's gateway runs with
 * (src/runtime/supervisor/launch.ts), so that the variants do not differ in GC tuning.
 */
export const HTTP_SERVER_FLAGS = ['--no-allocation-site-pretenuring'];

/** `node [nodeArgs] --import tsx <script> ...args`, stdin a pipe (closing it tells the child to leave). */
export function spawnTs(name: string, script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Child {
  return spawnChild(name, process.execPath, [...nodeArgs, '--import', 'tsx', script, ...args], env);
}

export function spawnChild(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  // A process group of its own: Ctrl-C reaches the bench only, which then stops every variant in
  // order (a chain whose processes all got SIGINT at once would tear down in a race).
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached: true });
  live.add(proc);
  const lines: string[] = [];
  let partial = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    partial += chunk;
    let nl = partial.indexOf('\n');
    while (nl >= 0) {
      const l = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      lines.push(l);
      for (let i = 0; i < waiters.length; i++) {
        const m = l.match(waiters[i]!.re);
        if (m) {
          waiters[i]!.resolve(m);
          waiters.splice(i, 1);
          i--;
        }
      }
      nl = partial.indexOf('\n');
    }
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (c: string) => {
    // Bounded: a chatty child must not grow the bench's memory.
    err = (err + c).slice(-8000);
    if (process.env.BENCH_VERBOSE) process.stderr.write(`[${name}] ${c}`);
  });
  proc.stdin!.on('error', () => {});
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  // 'close' (not 'exit'): it comes after the child's stdout is drained, so a last line written
  // just before exiting is seen before waiting for it is declared hopeless.
  let closed = false;
  proc.once('close', () => {
    closed = true;
  });
  proc.once('exit', () => live.delete(proc));
  return {
    proc,
    pid: proc.pid ?? -1,
    name,
    line(re, timeoutMs = 30_000) {
      for (const l of lines) {
        const m = l.match(re);
        if (m) return Promise.resolve(m);
      }
      if (closed) {
        return Promise.reject(new Error(`${name} exited (${proc.exitCode ?? proc.signalCode}) before printing ${re}; stderr:\n${err.slice(-2000)}`));
      }
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => done(new Error(`${name}: no line matching ${re} within ${timeoutMs} ms; stderr:\n${err.slice(-2000)}`)), timeoutMs);
        const onExit = (code: number | null) => done(new Error(`${name} exited (${code}) before printing ${re}; stderr:\n${err.slice(-2000)}`));
        const w = {
          re,
          resolve: (m: RegExpMatchArray) => {
            clearTimeout(t);
            proc.off('close', onExit);
            resolve(m);
          },
        };
        const done = (e: Error) => {
          clearTimeout(t);
          proc.off('close', onExit);
          const i = waiters.indexOf(w);
          if (i >= 0) waiters.splice(i, 1);
          reject(e);
        };
        waiters.push(w);
        proc.once('close', onExit);
      });
    },
    stderr: () => err,
    send(l) {
      proc.stdin!.write(`${l}\n`);
    },
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * SIGTERM to every child still running, SIGKILL to those still there after `graceMs`: the
 * bench's way out on Ctrl-C (a bpfctl host tears its chain down on SIGTERM, even mid-start).
 */
export async function stopAll(graceMs = 15_000): Promise<void> {
  const procs = [...live];
  await Promise.all(
    procs.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
          p.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          p.kill('SIGTERM');
        }),
    ),
  );
}

/** Kills every child still running (synchronous: usable from 'exit'). */
export function killAllSync(): void {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {}
  }
  live.clear();
}

/**
 * CPU time of a process (all its threads), in seconds; 0 once it is gone. From each thread's
 * schedstat (nanoseconds): utime + stime in /proc/<pid>/stat count 10 ms ticks, too coarse for an
 * idle chain (a 10 s window of an idle process reads 0 or 0.1% of a core). Falls back to the
 * ticks when a thread's schedstat cannot be read.
 */
export function cpuSeconds(pid: number): number {
  try {
    let ns = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const f = readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8');
      const v = Number(f.slice(0, f.indexOf(' ')));
      if (!Number.isFinite(v)) return tickSeconds(pid);
      ns += v;
    }
    return ns / 1e9;
  } catch {
    return tickSeconds(pid);
  }
}

/** utime + stime from /proc/<pid>/stat (clock ticks), in seconds; 0 once the process is gone. */
function tickSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: count fields from the last ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/**
 * How many times the process's threads went to sleep (voluntary context switches, all threads):
 * each is a wait that ended in a wakeup, so an idle process that polls or runs a timer shows here
 * even when its CPU time rounds to nothing. 0 once it is gone.
 */
export function wakeups(pid: number): number {
  try {
    let n = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const m = /\nvoluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'));
      if (m) n += Number(m[1]);
    }
    return n;
  } catch {
    return 0;
  }
}

export function totalCpu(pids: readonly number[]): number {
  let s = 0;
  for (const p of pids) s += cpuSeconds(p);
  return s;
}

/**
 * What a process of a variant is, in a few words: a bpfctl function instance by its function
 * (BPFCTL_FN in its environment), the Node gateway, the native gateway, a baseline's script with
 * its work name, or the executable's name.
 */
export function describeProcess(pid: number): string {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const fn = env.find((e) => e.startsWith('BPFCTL_FN='))?.slice('BPFCTL_FN='.length);
    const script = argv.find((a) => /\.(ts|js|mjs)$/.test(a) && !a.includes('node_modules'));
    const base = (a: string) => a.slice(a.lastIndexOf('/') + 1);
    if (fn) return `function ${fn} (${script ? 'ts' : base(argv[0] ?? '?')})`;
    if (script?.endsWith('gateway-main.ts') || script?.endsWith('gateway-main.js')) return 'node gateway';
    if (script?.endsWith('host.ts')) return 'supervisor';
    if (script) {
      const dir = base(script.slice(0, script.lastIndexOf('/')));
      const rest = argv.slice(argv.indexOf(script) + 1).filter((a) => /^[a-z]+$/.test(a));
      return [`${dir}/${base(script)}`, ...rest].join(' ');
    }
    return base(argv[0] ?? '?');
  } catch {
    return '?';
  }
}

/** `pid` and every process below it (children of children...), from /proc's ppid fields. */
export function processTree(pid: number): number[] {
  const parent = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parent.get(ppid) ?? [];
      list.push(Number(e));
      parent.set(ppid, list);
    } catch {}
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of parent.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/**
 * Exits the calling (child) process when its parent closes our stdin (the bench went away, even
 * by SIGKILL) or sends SIGTERM/SIGINT, after `cleanup`. Other stdin lines go to `onLine`.
 */
export function exitWithParent(cleanup: () => void | Promise<void> = () => {}, onLine: (line: string) => void = () => {}): void {
  let leaving = false;
  const leave = async () => {
    if (leaving) return;
    leaving = true;
    try {
      await cleanup();
    } finally {
      process.exit(0);
    }
  };
  let partial = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (c: string) => {
    partial += c;
    let nl = partial.indexOf('\n');
    while (nl >= 0) {
      onLine(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
      nl = partial.indexOf('\n');
    }
  });
  process.stdin.on('end', leave);
  process.stdin.on('error', leave);
  process.on('SIGTERM', leave);
  process.on('SIGINT', leave);
}

/** All CPUs of this machine, as a taskset list. */
export const ALL_CPUS = `0-${os.cpus().length - 1}`;

/**
 * Confines every thread of these processes to `cpus` (a taskset list): both sides of a compared
 * pair then run in the same layout. A process gone meanwhile is skipped.
 */
export function pin(pids: readonly number[], cpus: string): void {
  for (const pid of pids) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
    } catch {
      // exited since the list was made
    }
  }
}
