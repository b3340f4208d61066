/** Shared by the pool kernel tests: build the C side, run child processes, pick unique names. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hugetlbfsMounts } from '../../src/runtime/pool/index.ts';
import { leaksSince, type Snapshot } from '../helpers/leaks.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CHILD = join(ROOT, 'test/kernel/pool-child.ts');

let n = 0;
/** A pool name no other test run (or helper working in parallel) uses. */
export const uniqueName = (tag: string): string => `test-${process.pid}-${tag}-${++n}`;

export interface Built {
  dir: string;
  bin: string;
  cleanup(): void;
}

/** Compile test/c/pool_test.c against bpf/include into a fresh temporary directory. */
export function buildPoolTest(): Built {
  const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-pool-`));
  const bin = join(dir, 'pool_test');
  execFileSync('cc', ['-O2', '-std=c11', '-Wall', '-Wextra', '-Werror', '-I', join(ROOT, 'bpf/include'), '-o', bin, join(ROOT, 'test/c/pool_test.c')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { dir, bin, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr }));
  });
}

/** `node --import tsx test/kernel/pool-child.ts ...` */
export const tsChild = (args: readonly string[]): [string, string[], NodeJS.ProcessEnv] => [
  process.execPath,
  ['--import', 'tsx', CHILD, ...args],
  { BPFCTL_POOL_CHILD: '1' },
];

/** Start a process and resolve once it printed "ready" (rejects if it exits first). */
export function startReady(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready\n')) res(child);
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('error', rej);
    child.on('exit', (code) => rej(new Error(`${cmd} exited (${code}) before ready: ${err}`)));
  });
}

export function killAndWait(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    child.once('exit', () => res());
    child.kill('SIGKILL');
  });
}

const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages';

/** Huge pages nobody holds or has reserved (a mapping reserves its pages before touching them). */
export function hugeFree(): number {
  const info = readFileSync('/proc/meminfo', 'utf8');
  const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return get('HugePages_Free') - get('HugePages_Rsvd');
}

/** Whether the kernel has hugetlb support at all (the only reason a huge-page test may skip). */
export function hugetlbSupported(): boolean {
  return existsSync(NR_HUGEPAGES);
}

/** Say in the test output that a test did not run, and why (only for what the kernel lacks). */
export function skipped(why: string): void {
  process.stdout.write(`\n  SKIPPED (kernel): ${why}\n`);
}

/**
 * Run `fn` with `pages` more 2 MiB huge pages and a hugetlbfs mount, then put nr_hugepages and the
 * mount back as they were. If the kernel cannot find the pages at once it compacts memory and
 * tries again; if it still cannot, that is a failure (throws). Returns false (fn not run) only when
 * the kernel has no hugetlb support.
 */
export async function withHugepages(pages: number, fn: () => Promise<void>): Promise<boolean> {
  if (!hugetlbSupported()) return false;
  const saved = readFileSync(NR_HUGEPAGES, 'utf8').trim();
  const mountedByUs = hugetlbfsMounts().length === 0;
  const freeBefore = hugeFree();
  try {
    writeFileSync(NR_HUGEPAGES, String(Number(saved) + pages));
    for (let i = 0; i < 3 && hugeFree() < freeBefore + pages; i++) {
      writeFileSync(NR_HUGEPAGES, saved);
      writeFileSync('/proc/sys/vm/compact_memory', '1');
      writeFileSync(NR_HUGEPAGES, String(Number(saved) + pages));
    }
    if (hugeFree() < freeBefore + pages) throw new Error(`the kernel gave ${hugeFree() - freeBefore} of ${pages} huge pages, even after compacting memory`);
    if (mountedByUs) {
      mkdirSync('/dev/hugepages', { recursive: true });
      execFileSync('mount', ['-t', 'hugetlbfs', 'none', '/dev/hugepages']);
    }
    await fn();
    // Whatever fn mapped (pool files, EAL memory) must be gone with it.
    const left = freeBefore + pages - hugeFree();
    if (left !== 0) throw new Error(`${left} huge pages still held after the test`);
    return true;
  } finally {
    if (mountedByUs && hugetlbfsMounts().length) execFileSync('umount', ['/dev/hugepages']);
    writeFileSync(NR_HUGEPAGES, saved);
  }
}

/**
 * Run `fn` with no free huge page (what a machine without huge pages configured has): the free
 * ones are given back to the kernel for the time of `fn` (nr_hugepages lowered by that many,
 * pages in use stay), then nr_hugepages is put back.
 */
export async function withoutFreeHugepages(fn: () => Promise<void> | void): Promise<void> {
  if (!hugetlbSupported()) return void (await fn());
  const saved = readFileSync(NR_HUGEPAGES, 'utf8').trim();
  const free = hugeFree();
  try {
    if (free > 0) writeFileSync(NR_HUGEPAGES, String(Number(saved) - free));
    if (hugeFree() !== 0) throw new Error(`${hugeFree()} huge pages still free after giving ${free} back`);
    await fn();
  } finally {
    writeFileSync(NR_HUGEPAGES, saved);
  }
}

/**
 * The pool tests' leak check: leaksSince() unfiltered (pool files, fds, processes and BPF objects
 * alike; it tells other runs' objects from ours itself).
 */
export function poolLeaks(before: Snapshot): Promise<string[]> {
  return leaksSince(before);
}
