/**
 * Builds the tcp-c functions (../c/{upper,reverse,stamp}.c, unchanged, linked with ./fn-tcp.c
 * instead of bpfctl's C runtime) and the C reference (../c-inproc/main.c), with the flags
 * bpfctl builds C functions with (src/runtime/c/build.ts), cached by content under
 * .cache/bench/tcp-c.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CFunctionBuildError, cachedExecutable, INCLUDE_DIR } from '../../../src/runtime/c/build.ts';
import { CHAIN, type WorkName } from '../work.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const CACHE = here('../../../.cache/bench/tcp-c');
const FLAGS = ['-O2', '-g', '-std=c11', '-Wall', '-Wextra', '-Werror=implicit-function-declaration'];
const FN_H = join(INCLUDE_DIR, 'bpfctl/fn.h');

/** The three functions over TCP, by work name. */
export async function buildTcpCFunctions(): Promise<Record<WorkName, string>> {
  const out = {} as Record<WorkName, string>;
  for (const w of CHAIN) {
    const src = here(`../c/${w}.c`);
    out[w] = await cachedExecutable({
      cc: process.env.CC ?? 'cc',
      args: [...FLAGS, `-I${INCLUDE_DIR}`, src, here('./fn-tcp.c'), '-pthread'],
      inputs: [src, here('./fn-tcp.c'), FN_H],
      cacheDir: CACHE,
      name: `${w}-tcp`,
      fail: (stderr, cause) => new CFunctionBuildError(`cannot compile the tcp-c function ${src}`, stderr, { cause }),
    });
  }
  return out;
}

/** The in-process C reference (the three functions called in a row, no transport). */
export function buildCInproc(): Promise<string> {
  const src = here('../c-inproc/main.c');
  return cachedExecutable({
    cc: process.env.CC ?? 'cc',
    args: [...FLAGS, `-I${INCLUDE_DIR}`, src],
    inputs: [src, ...CHAIN.map((w) => here(`../c/${w}.c`)), FN_H],
    cacheDir: CACHE,
    name: 'c-inproc',
    fail: (stderr, cause) => new CFunctionBuildError(`cannot compile the C reference ${src}`, stderr, { cause }),
  });
}
