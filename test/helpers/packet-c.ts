/**
 * The packet tests' C side: compile a test program against bpf/include (or a mutated copy of it)
 * into a temporary directory, and run it with a time limit, collecting its output.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const INCLUDE = join(ROOT, 'bpf/include');

export interface BuiltC {
  readonly dir: string;
  readonly bin: string;
  cleanup(): void;
}

/** cc -O2 -std=c11 -Wall -Wextra -Werror: a warning in the headers fails the test that builds them. */
export function buildC(tag: string, sources: readonly string[], o: { include?: string; libs?: readonly string[]; flags?: readonly string[] } = {}): BuiltC {
  const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-${tag}-`));
  const bin = join(dir, tag);
  try {
    execFileSync('cc', ['-O2', '-g', '-std=c11', '-Wall', '-Wextra', '-Werror', ...(o.flags ?? []), '-I', o.include ?? INCLUDE, '-o', bin, ...sources.map((s) => resolve(ROOT, s)), ...(o.libs ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cc ${sources.join(' ')}: ${(err as { stderr?: Buffer }).stderr?.toString() ?? String(err)}`);
  }
  return { dir, bin, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `bin args` (killed after timeoutMs), resolving with whatever it said. */
export function runC(bin: string, args: readonly string[], timeoutMs = 60_000, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((res) => {
    execFile(bin, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      res({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

/** The last line of a program's stdout as JSON. */
export function lastJson<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split('\n').pop() ?? '') as T;
}
