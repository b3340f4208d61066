/**
 * The corpus of third-party-style eBPF objects (test/objects/*.bpf.c), compiled through the
 * project's clang driver and its content-addressed cache. `objectFile(name)` gives the path of
 * name.bpf.o, named after the source so the loader derives the same object name bpftool would.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { compileBpf } from '../../src/compile/index.ts';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(tmpdir(), `bpfctl-objects-${process.pid}`);

/** Compiles test/objects/<name>.bpf.c (cached) and returns a path ending in <as ?? name>.bpf.o. */
export function objectFile(name: string, as: string = name): string {
  const source = readFileSync(join(here, `${name}.bpf.c`), 'utf8');
  const { objectPath } = compileBpf({ source, name });
  mkdirSync(out, { recursive: true });
  const dest = join(out, `${as}.bpf.o`);
  if (!existsSync(dest)) copyFileSync(objectPath, dest);
  return dest;
}

/** Where objectFile puts its copies (tests remove it at the end). */
export const objectsDir = out;

const libc = koffi.load('libc.so.6');
/** Real syscalls (glibc does not cache these), to fire the corpus's tracing programs. */
export const syscalls = {
  getppid: libc.func('int getppid(void)') as () => number,
  getpgid: libc.func('int getpgid(int pid)') as (pid: number) => number,
  getuid: libc.func('unsigned int getuid(void)') as () => number,
  getsid: libc.func('int getsid(int pid)') as (pid: number) => number,
};
