/**
 * The bench's programs: the launcher + hop processes (main.c, roles.c, transport.c; built with cc
 * against bpfctl's own packet_ring.h) and the skmsg variant's sk_msg object (redirect.bpf.c),
 * loaded through bpfctl's loader with its program attached to its sockhash.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject } from '../../loader/index.ts';
import { compileBpf } from '../../src/compile/index.ts';

const here = dirname(fileURLToPath(import.meta.url));
const include = join(here, '../../bpf/include');
const cacheDir = join(here, '../../.cache/bench/descriptors');
const SOURCES = ['main.c', 'roles.c', 'transport.c', 'roles.h', 'transport.h', 'layout.h'].map((f) => join(here, f));
const HEADERS = ['packet_ring.h', 'packet_layout.h'].map((f) => join(include, 'bpfctl', f));

/** The launcher binary, rebuilt when its sources or the ring headers change. */
export function buildLauncher(): string {
  const h = createHash('sha256');
  for (const f of [...SOURCES, ...HEADERS]) h.update(readFileSync(f));
  const out = join(cacheDir, `descbench-${h.digest('hex').slice(0, 12)}`);
  if (existsSync(out)) return out;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const c = SOURCES.filter((f) => f.endsWith('.c'));
  execFileSync('cc', ['-O2', '-g', '-Wall', '-Wextra', '-Werror', '-I', include, '-o', tmp, ...c], { stdio: ['ignore', 'ignore', 'pipe'] });
  renameSync(tmp, out);
  return out;
}

/** The skmsg variant's sockhash, its sk_msg program attached; `fd` is what the launcher inherits. */
export interface Redirect {
  readonly fd: number;
  close(): void;
}

/**
 * Loads redirect.bpf.c and attaches its program to its sockhash before any socket goes in
 * (gotcha 2). Nothing is pinned: the map and the program live as long as this process holds them,
 * so even a bench killed with SIGKILL leaves nothing in the kernel.
 */
export function loadRedirect(): Redirect {
  const obj = BpfObject.open(compileBpf(join(here, 'redirect.bpf.c')).objectPath);
  try {
    obj.load();
    const map = obj.map('socks');
    const att = obj.program('desc_redirect').attachSockMap(map, 'msg_verdict');
    return {
      fd: map.fd,
      close() {
        try {
          att.close();
        } catch {}
        obj.close();
      },
    };
  } catch (err) {
    obj.close();
    throw err;
  }
}
