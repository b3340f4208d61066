/**
 * Tracing programs as bpf_links, so they can be pinned and outlive the process that attached
 * them: tracepoints and kprobes through a perf event (BPF_LINK_CREATE with BPF_PERF_EVENT, kernel
 * 5.15+), raw tracepoints and BTF-typed tracing programs (fentry/fexit/fmod_ret/tp_btf/lsm)
 * through BPF_RAW_TRACEPOINT_OPEN. The perf event's fd is closed once the link holds it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { check, EINVAL, ENOENT, LoaderError, loaderError } from './errors.ts';
import { closeFd } from './info.ts';
import { addressOf, c, lastErrno, lib } from './libbpf.ts';
import { BpfLink } from './link.ts';
import { typeValue } from './types.ts';

type Prog = { fd: number; name: string; type: string };

const NR_PERF_EVENT_OPEN = 298; // x86-64
const PERF_TYPE_TRACEPOINT = 2;
const PERF_FLAG_FD_CLOEXEC = 8;
const PERF_ATTR_SIZE = 112;
const TRACEFS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

function perfEventOpen(attr: Buffer, what: string): number {
  const fd = Number(c().perf_event_open(NR_PERF_EVENT_OPEN, attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
  if (fd < 0) throw loaderError(`perf_event_open for ${what}`, lastErrno());
  return fd;
}

function linkPerfEvent(prog: Prog, pfd: number, what: string): BpfLink {
  try {
    const fd = check(lib().bpf_link_create(prog.fd, pfd, typeValue('attach', 'perf_event')!, null), `attach '${prog.name}' to ${what}`);
    return new BpfLink(fd);
  } finally {
    closeFd(pfd);
  }
}

function need(prog: Prog, types: string[], what: string): void {
  if (!types.includes(prog.type)) throw new LoaderError('E_INVAL', EINVAL, `cannot attach '${prog.name}' to ${what}: it is a ${prog.type} program, ${what} takes ${types.join(' or ')}`);
}

/** Mount tracefs at /sys/kernel/tracing when no tracefs is mounted (as ensureBpffs does for bpffs). */
export function ensureTracefs(): void {
  if (TRACEFS.some((r) => existsSync(`${r}/events`))) return;
  try {
    execFileSync('mount', ['-t', 'tracefs', 'tracefs', TRACEFS[0]!], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new LoaderError('E_TRACEFS', 1, `cannot mount tracefs at ${TRACEFS[0]}: ${stderr || String(err)} (needs root)`);
  }
}

/** The numeric id of tracepoint `category/name` from tracefs. LoaderError E_NOENT when it does not exist. */
export function tracepointId(category: string, name: string): number {
  ensureTracefs();
  for (const root of TRACEFS) {
    try {
      return Number(readFileSync(`${root}/events/${category}/${name}/id`, 'utf8').trim());
    } catch {
      // try the next mount point
    }
  }
  throw loaderError(`tracepoint ${category}/${name}`, ENOENT, { hint: `no such tracepoint (see ${TRACEFS[0]}/events/${category}/)` });
}

/** A tracepoint program on `category/name` (e.g. syscalls/sys_enter_getpid). */
export function attachTracepoint(prog: Prog, category: string, name: string): BpfLink {
  need(prog, ['tracepoint'], `tracepoint ${category}/${name}`);
  const attr = Buffer.alloc(PERF_ATTR_SIZE);
  attr.writeUInt32LE(PERF_TYPE_TRACEPOINT, 0);
  attr.writeUInt32LE(PERF_ATTR_SIZE, 4);
  attr.writeBigUInt64LE(BigInt(tracepointId(category, name)), 8);
  attr.writeBigUInt64LE(1n, 16); // sample_period
  attr.writeUInt32LE(1, 48); // wakeup_events
  return linkPerfEvent(prog, perfEventOpen(attr, `tracepoint ${category}/${name}`), `tracepoint ${category}/${name}`);
}

function pmuType(pmu: string, what: string): number {
  try {
    return Number(readFileSync(`/sys/bus/event_source/devices/${pmu}/type`, 'utf8').trim());
  } catch {
    throw new LoaderError('E_NOTSUPP', 95, `attach ${what}: this kernel has no ${pmu} PMU (built without CONFIG_KPROBES / CONFIG_KPROBE_EVENTS)`);
  }
}

function retprobeBit(pmu: string): number {
  const f = readFileSync(`/sys/bus/event_source/devices/${pmu}/format/retprobe`, 'utf8').trim();
  return Number(/config:(\d+)/.exec(f)?.[1] ?? 0);
}

/** A kprobe (or kretprobe) program on kernel function `func`. LoaderError E_NOENT for an unknown function. */
export function attachKprobe(prog: Prog, func: string, opts: { retprobe?: boolean } = {}): BpfLink {
  const what = `${opts.retprobe ? 'kretprobe' : 'kprobe'} ${func}`;
  need(prog, ['kprobe'], what);
  const name = Buffer.from(`${func}\0`);
  const attr = Buffer.alloc(PERF_ATTR_SIZE);
  attr.writeUInt32LE(pmuType('kprobe', what), 0);
  attr.writeUInt32LE(PERF_ATTR_SIZE, 4);
  if (opts.retprobe) attr.writeBigUInt64LE(1n << BigInt(retprobeBit('kprobe')), 8);
  attr.writeBigUInt64LE(1n, 16);
  attr.writeUInt32LE(1, 48);
  attr.writeBigUInt64LE(addressOf(name), 56); // kprobe_func
  attr.writeBigUInt64LE(0n, 64); // probe_offset
  let pfd: number;
  try {
    pfd = perfEventOpen(attr, what);
  } catch (err) {
    if (err instanceof LoaderError && err.errno === ENOENT) throw loaderError(`attach '${prog.name}' to ${what}`, ENOENT, { hint: 'no such kernel function (see /proc/kallsyms)' });
    throw err;
  }
  return linkPerfEvent(prog, pfd, what);
}

/** A raw tracepoint program on `name` (e.g. sys_enter). */
export function attachRawTracepoint(prog: Prog, name: string): BpfLink {
  need(prog, ['raw_tracepoint', 'raw_tracepoint_writable'], `raw tracepoint ${name}`);
  const fd = lib().bpf_raw_tracepoint_open(name, prog.fd) as number;
  if (fd === -ENOENT) throw loaderError(`attach '${prog.name}' to raw tracepoint ${name}`, ENOENT, { hint: 'no such raw tracepoint' });
  return new BpfLink(check(fd, `attach '${prog.name}' to raw tracepoint ${name}`));
}

/** fentry/fexit/fmod_ret/tp_btf/lsm: the target was fixed at load (from the section name). */
export function attachTracing(prog: Prog): BpfLink {
  need(prog, ['tracing', 'lsm', 'ext'], 'its BTF target');
  return new BpfLink(check(lib().bpf_raw_tracepoint_open(null, prog.fd), `attach '${prog.name}' to its BTF target`));
}
