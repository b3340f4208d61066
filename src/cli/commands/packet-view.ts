/**
 * How `status` shows a running policy's packet chains: the supervisor's reading of the packet
 * plane (control op `packet`, counters as numbers), as tables of chains, functions and ports.
 */
import { pathExists } from '../../deploy/access.ts';
import { askSupervisor, controlPath } from '../../runtime/supervisor/index.ts';
import type { Output } from '../output.ts';

export interface PacketView {
  pktioPid: number;
  txQueued: number;
  pool: { inUse: number; bufferCount: number };
  ports: { interface: string; nqueues: number; bound: boolean; zeroCopy: boolean; rx: number; tx: number; txFail: number; rxDropped: number; rxFillEmpty: number; posted: number; noChain: number; rxRingFull: number; lost: number }[];
  /** coalesceUs: the chain's coalescing window (absent: none). */
  chains: { name: string; in: number; out: number; dropped: number; lost: number; coalesceUs?: number }[];
  functions: {
    name: string;
    live: number[];
    instances: { inst: number; pid: number; state: string; queued: number; rx: number; passed: number; dropped: number; lost: number; batches: number; wakeups: number; reclaimed: number }[];
  }[];
}

export function printPacket(out: Output, p: PacketView): void {
  out.line('');
  out.table(
    p.chains.map((c) => ({ ...c, coalesce: c.coalesceUs ? `${c.coalesceUs} us` : '-' })),
    ['name', 'in', 'out', 'dropped', 'lost', 'coalesce'],
    'Packet chains (frames)',
  );
  out.line('');
  out.table(
    p.functions.flatMap((f) =>
      f.instances.map((i) => ({ function: f.name, inst: i.inst, pid: i.pid || '', state: i.state, queued: i.queued, rx: i.rx, passed: i.passed, dropped: i.dropped, lost: i.lost, reclaimed: i.reclaimed, 'frames/batch': i.batches ? (i.rx / i.batches).toFixed(1) : '-' })),
    ),
    ['function', 'inst', 'pid', 'state', 'queued', 'rx', 'passed', 'dropped', 'lost', 'reclaimed', 'frames/batch'],
    'Packet functions',
  );
  out.line('');
  out.table(
    p.ports.map((x) => ({ port: x.interface, mode: x.bound ? (x.zeroCopy ? 'zero-copy' : 'copy') : 'unbound', queues: x.nqueues, rx: x.rx, tx: x.tx, 'tx failed': x.txFail, 'no chain': x.noChain, 'kernel drops': x.rxDropped + x.rxRingFull + x.rxFillEmpty, posted: x.posted })),
    ['port', 'mode', 'queues', 'rx', 'tx', 'tx failed', 'no chain', 'kernel drops', 'posted'],
    `AF_XDP ports (pktio pid ${p.pktioPid || '-'}; pool ${p.pool.inUse}/${p.pool.bufferCount} buffers in use, ${p.ports.reduce((n, x) => n + x.posted, 0)} of them posted to the kernel)`,
  );
}

/** The supervisor's packet reading, or null when no `bpfctl run` of this policy runs packet chains. */
export async function readPacket(policy: string): Promise<PacketView | null> {
  if (!pathExists(controlPath(policy))) return null;
  try {
    return (await askSupervisor(policy, { op: 'packet' }, undefined, 2000)) as PacketView | null;
  } catch {
    return null;
  }
}

const rate = (a: number, b: number, s: number) => (s > 0 ? Math.max(0, Math.round((b - a) / s)) : 0);

/** Frames per second between two readings `seconds` apart: per chain, per function, per port. */
export function packetRates(prev: PacketView, cur: PacketView, seconds: number) {
  const chains = cur.chains.map((c) => {
    const p = prev.chains.find((x) => x.name === c.name) ?? c;
    return { chain: c.name, inPerSec: rate(p.in, c.in, seconds), outPerSec: rate(p.out, c.out, seconds), dropsPerSec: rate(p.dropped + p.lost, c.dropped + c.lost, seconds), in: c.in, out: c.out, drops: c.dropped + c.lost };
  });
  const lossOf = (i: PacketView['functions'][number]['instances'][number]) => i.dropped + i.lost + i.reclaimed;
  const functions = cur.functions.map((f) => {
    const p = prev.functions.find((x) => x.name === f.name) ?? f;
    const total = (v: PacketView['functions'][number], pick: (i: PacketView['functions'][number]['instances'][number]) => number) => v.instances.reduce((n, i) => n + pick(i), 0);
    return {
      function: f.name,
      live: f.live.length,
      pktsPerSec: rate(total(p, (i) => i.rx), total(f, (i) => i.rx), seconds),
      dropsPerSec: rate(total(p, lossOf), total(f, lossOf), seconds),
      queued: total(f, (i) => i.queued),
      pkts: total(f, (i) => i.rx),
      drops: total(f, lossOf),
    };
  });
  const ports = cur.ports.map((x) => {
    const p = prev.ports.find((y) => y.interface === x.interface) ?? x;
    return { port: x.interface, rxPerSec: rate(p.rx, x.rx, seconds), txPerSec: rate(p.tx, x.tx, seconds), kernelDropsPerSec: rate(p.rxDropped + p.rxRingFull + p.rxFillEmpty, x.rxDropped + x.rxRingFull + x.rxFillEmpty, seconds) };
  });
  return { chains, functions, ports };
}
