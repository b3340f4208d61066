/**
 * Idle CPU of `bpfctl run examples/hello-chain/policy.ts` as a user starts it: the whole process
 * tree of the `bpfctl run` process (supervisor, gateway, every instance and any helper process
 * such as esbuild's service), from `startAfterMs` after it printed its URL, over a window the
 * caller ends. Two copies: the compiled package (`bin/bpfctl.js`, what users run; skipped when
 * dist/ is not built) and the TypeScript sources under tsx (what a checkout's tests run).
 *
 * Each copy is examples/hello-chain under a name of its own (in .cache/bench, with the bench's pid),
 * so that the bench runs beside anyone else's hello-chain on the machine, another chain bench's
 * included (a policy name can run once). A copy that failed to start has no number: it reports
 * why instead (a dead process tree would read 0% of a core).
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Child, cpuSeconds, processTree, spawnChild, spawnTs, wakeups } from './proc.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');

export type HelloMode = 'compiled' | 'sources';

export interface HelloIdle {
  mode: HelloMode;
  /** Why there is no number (not built, failed to start). */
  skipped?: string;
  /** When dist/ was built (compiled mode). */
  built?: string;
  cpu_pct: number;
  wakeups_per_s: number;
  processes: { pid: number; what: string; cpu_pct: number; wakeups_per_s: number }[];
}

export interface HelloRun {
  readonly mode: HelloMode;
  /** Resolves once the chain printed its URL (rejects on a failed start). */
  readonly ready: Promise<void>;
  /** Starts the window: CPU and wakeups of the tree from now. */
  mark(): void;
  /** Ends the window and stops the chain. */
  finish(): Promise<HelloIdle>;
}

function copyPolicy(mode: HelloMode): string {
  const dir = join(repo, '.cache/bench', `hello-idle-${mode}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(repo, 'examples/hello-chain'), dir, { recursive: true });
  const policy = join(dir, 'policy.ts');
  writeFileSync(policy, readFileSync(policy, 'utf8').replace("name: 'hello-chain'", `name: 'bench-idle-${mode}-${process.pid}'`));
  return policy;
}

function what(pid: number): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const main = argv.find((a) => /(main|gateway-main|bpfctl)\.(js|ts)$|esbuild|\/sh$|\.cache\/bpfctl/.test(a)) ?? argv[0] ?? '?';
    return main.replace(repo, '.').replace(/^.*\/(esbuild)$/, '$1');
  } catch {
    return '?';
  }
}

export function startHello(mode: HelloMode): HelloRun {
  const dist = join(repo, 'dist/src/cli/main.js');
  if (mode === 'compiled' && !existsSync(dist)) {
    const skipped = 'dist/ is not built (npm run build)';
    return { mode, ready: Promise.resolve(), mark: () => {}, finish: async () => ({ mode, skipped, cpu_pct: Number.NaN, wakeups_per_s: Number.NaN, processes: [] }) };
  }
  const policy = copyPolicy(mode);
  const child: Child =
    mode === 'compiled'
      ? spawnChild('hello-compiled', process.execPath, [join(repo, 'bin/bpfctl.js'), 'run', policy, '--json'])
      : spawnTs('hello-sources', join(repo, 'bench/chain/bpfctl/cli.ts'), ['run', policy, '--json']);
  let failed: string | null = null;
  const ready = child.line(/"url"/, 120_000).then(
    () => {},
    (err: unknown) => {
      failed = `did not start: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`;
      throw err;
    },
  );
  let t0 = 0;
  let pids: number[] = [];
  let cpu0: number[] = [];
  let wake0: number[] = [];
  return {
    mode,
    ready,
    mark: () => {
      pids = processTree(child.pid);
      cpu0 = pids.map(cpuSeconds);
      wake0 = pids.map(wakeups);
      t0 = performance.now();
    },
    finish: async () => {
      if (failed !== null) {
        await child.stop('SIGTERM', 15_000);
        rmSync(dirname(policy), { recursive: true, force: true });
        return { mode, skipped: failed, cpu_pct: Number.NaN, wakeups_per_s: Number.NaN, processes: [] };
      }
      const s = (performance.now() - t0) / 1000;
      const processes = pids.map((pid, i) => ({ pid, what: what(pid), cpu_pct: ((cpuSeconds(pid) - cpu0[i]!) / s) * 100, wakeups_per_s: (wakeups(pid) - wake0[i]!) / s }));
      await child.stop('SIGTERM', 15_000);
      rmSync(dirname(policy), { recursive: true, force: true });
      return {
        mode,
        built: mode === 'compiled' ? statSync(dist).mtime.toISOString() : undefined,
        cpu_pct: processes.reduce((a, p) => a + p.cpu_pct, 0),
        wakeups_per_s: processes.reduce((a, p) => a + p.wakeups_per_s, 0),
        processes,
      };
    },
  };
}
