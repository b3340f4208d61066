/**
 * The bench's own programs: the generator (gen.c + gen.bpf.c, built here with clang, bpftool's
 * skeleton and cc), the sink (sink.bpf.c, loaded and read through bpfctl's loader) and the
 * xdp-redirect DUT (fwd.bpf.c).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileBpf } from '../../src/compile/index.ts';
import { BpfObject, possibleCpus, withNetns, type XdpAttachment } from '../../loader/index.ts';
import type { Topology } from './topo.ts';

const here = dirname(fileURLToPath(import.meta.url));
const cacheDir = join(here, '../../.cache/bench/packet');

/** The UDP port the bench's frames go to (discard). */
export const PORT = 9;

/** An IPv4 address as the u32 whose little-endian bytes are the address in network order. */
function beAddr(ip: string): number {
  const b = Buffer.from(ip.split('.').map(Number));
  return b.readUInt32LE(0);
}

const macBytes = (m: string) => Uint8Array.from(m.split(':').map((h) => Number.parseInt(h, 16)));

/** The generator binary, rebuilt when its sources change. */
export function buildGen(): string {
  const srcs = ['gen.c', 'gen.bpf.c', 'frame.h'].map((f) => join(here, f));
  const h = createHash('sha256');
  for (const f of srcs) h.update(readFileSync(f));
  const out = join(cacheDir, `gen-${h.digest('hex').slice(0, 12)}`);
  if (existsSync(out)) return out;
  mkdirSync(cacheDir, { recursive: true });
  const obj = compileBpf(join(here, 'gen.bpf.c')).objectPath;
  const skelDir = join(cacheDir, `skel-${process.pid}`);
  mkdirSync(skelDir, { recursive: true });
  const skel = execFileSync('bpftool', ['gen', 'skeleton', obj, 'name', 'gen_bpf'], { encoding: 'utf8' });
  execFileSync('sh', ['-c', 'cat > "$1"', 'sh', join(skelDir, 'gen.skel.h')], { input: skel });
  const tmp = `${out}.${process.pid}.tmp`;
  execFileSync('cc', ['-O2', '-Wall', '-I', skelDir, '-o', tmp, join(here, 'gen.c'), '-lbpf']);
  execFileSync('rm', ['-rf', skelDir]);
  renameSync(tmp, out);
  return out;
}

export interface SinkSnapshot {
  packets: number;
  bytes: number;
  natted: number;
  other: number;
  /** Latency histogram counts (sink.bpf.c's buckets). */
  hist: Float64Array;
}

const FINE_BUCKETS = 1000;
const FINE_NS = 100;
const COARSE_NS = 10_000;
const HIST_BUCKETS = 2001;

/** The upper edge of a histogram bucket, in microseconds. */
function bucketUs(b: number): number {
  if (b < FINE_BUCKETS) return ((b + 1) * FINE_NS) / 1000;
  if (b < HIST_BUCKETS - 1) return (FINE_BUCKETS * FINE_NS + (b - FINE_BUCKETS + 1) * COARSE_NS) / 1000;
  return Number.POSITIVE_INFINITY;
}

/** The q-quantile (0..1) of the frames counted between two snapshots, in microseconds. */
export function quantileUs(a: SinkSnapshot, b: SinkSnapshot, q: number): number {
  let total = 0;
  for (let i = 0; i < HIST_BUCKETS; i++) total += b.hist[i]! - a.hist[i]!;
  if (total <= 0) return Number.NaN;
  const want = q * total;
  let seen = 0;
  for (let i = 0; i < HIST_BUCKETS; i++) {
    seen += b.hist[i]! - a.hist[i]!;
    if (seen >= want) return bucketUs(i);
  }
  return Number.POSITIVE_INFINITY;
}

export interface Sink {
  snapshot(): SinkSnapshot;
  close(): void;
}

function sumPerCpu(v: Uint8Array | null, cpus: number): number {
  if (!v) return 0;
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  let s = 0;
  for (let c = 0; c < cpus; c++) s += Number(dv.getBigUint64(c * 8, true));
  return s;
}

/** The counting sink on the receiver's veth (an XDP link owned by this process). */
export function attachSink(t: Topology): Sink {
  const obj = BpfObject.open(compileBpf(join(here, 'sink.bpf.c')).objectPath);
  let link: XdpAttachment | undefined;
  try {
    obj.setGlobal('port', PORT);
    obj.setGlobal('nat_addr', beAddr(t.natAddr));
    obj.load();
    link = obj.program('bench_sink').attachXdp(t.ifR, { netns: t.nsR, mode: 'native' });
  } catch (err) {
    obj.close();
    throw err;
  }
  const cpus = possibleCpus();
  const stats = obj.map('stats');
  const hist = obj.map('hist');
  const key = (k: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, k, true);
    return b;
  };
  return {
    snapshot() {
      // struct sink_stats per CPU: pkts, bytes, natted, other (u64 each).
      const v = stats.lookup(key(0));
      const field = (i: number) => {
        if (!v) return 0;
        const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
        let s = 0;
        for (let c = 0; c < cpus; c++) s += Number(dv.getBigUint64(c * 32 + i * 8, true));
        return s;
      };
      const [packets, bytes, natted, other] = [field(0), field(1), field(2), field(3)];
      const h = new Float64Array(HIST_BUCKETS);
      const all = hist.lookupBatch();
      if (all) {
        for (let i = 0; i < all.keys.length; i++) {
          const k = new DataView(all.keys[i]!.buffer, all.keys[i]!.byteOffset, 4).getUint32(0, true);
          h[k] = sumPerCpu(all.values[i]!, cpus);
        }
      }
      return { packets, bytes, natted, other, hist: h };
    },
    close() {
      link?.close();
      obj.close();
    },
  };
}

/** The xdp-redirect DUT: fwd.bpf.c on the DUT's ingress veth, redirecting to its egress veth. */
export function attachForwarder(t: Topology): { frames(): number; close(): void } {
  const obj = BpfObject.open(compileBpf(join(here, 'fwd.bpf.c')).objectPath);
  let link: XdpAttachment | undefined;
  try {
    obj.setGlobal('nat_addr', beAddr(t.natAddr));
    obj.setGlobal('src_mac', macBytes(t.macOut));
    obj.setGlobal('dst_mac', macBytes(t.macR));
    obj.load();
    const v = new Uint8Array(4);
    new DataView(v.buffer).setUint32(0, t.ifindex(t.nsD, t.ifOut), true);
    // The kernel resolves a devmap's ifindex in the namespace of the thread writing it: inside
    // the DUT's, or it names whatever device has that index in ours.
    withNetns(t.nsD, () => obj.map('egress').update(new Uint8Array(4), v));
    link = obj.program('bench_fwd').attachXdp(t.ifIn, { netns: t.nsD, mode: 'native' });
  } catch (err) {
    obj.close();
    throw err;
  }
  const cpus = possibleCpus();
  return {
    frames: () => sumPerCpu(obj.map('counters').lookup(new Uint8Array(4)), cpus),
    close() {
      link?.close();
      obj.close();
    },
  };
}
