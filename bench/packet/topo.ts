/**
 * The packet bench's topology: three namespaces and two veth pairs,
 *
 *   <tag>-snd [ifS] ──veth── [ifIn] <tag>-dut [ifOut] ──veth── [ifR] <tag>-rcv
 *
 * and inside the sender's namespace a second veth pair [ifPaceIn] ── [ifPaceOut], where the
 * generator's paced frames enter (gen.bpf.c).
 *
 * sender 198.18.1.1, DUT 198.18.1.2 / 198.19.1.1, receiver 198.19.1.2 (RFC 2544's benchmarking
 * range, only inside these namespaces). The DUT's NAT rewrites sources to its egress address.
 * Interface names are short on purpose: the threaded-NAPI kernel threads the bench measures are
 * named `napi/<ifname>-<id>` and a thread name holds 15 characters.
 *
 * Namespaces carry the bench's pid (`bpk<pid>-dut`), so a run finds and removes what a run that
 * was killed outright (SIGKILL) left behind, and never touches a live run's.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';

export interface Topology {
  readonly nsS: string;
  readonly nsD: string;
  readonly nsR: string;
  readonly ifS: string;
  readonly ifIn: string;
  readonly ifOut: string;
  readonly ifR: string;
  readonly ifPaceIn: string;
  readonly ifPaceOut: string;
  readonly ipS: string;
  readonly ipIn: string;
  readonly ipOut: string;
  readonly ipR: string;
  /** The source address the DUT's NAT writes (its egress address). */
  readonly natAddr: string;
  readonly macS: string;
  readonly macIn: string;
  readonly macOut: string;
  readonly macR: string;
  /** `cmd args` inside namespace `ns`; its stdout. */
  exec(ns: string, cmd: string, args: readonly string[], opts?: { allowFail?: boolean; input?: string }): string;
  ifindex(ns: string, ifname: string): number;
  destroy(): void;
}

const NS_RE = /^bpk(\d+)-(snd|dut|rcv)$/;

function run(cmd: string, args: readonly string[], opts: { allowFail?: boolean; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, maxBuffer: 16 << 20 });
  if (r.status !== 0 && !opts.allowFail) {
    const why = (r.stderr || r.stdout || String(r.error ?? '')).trim().split('\n').slice(-3).join(' / ');
    throw new Error(`${cmd} ${args.join(' ')} failed: ${why}`);
  }
  return r.stdout ?? '';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes what packet-bench runs whose process is gone left (namespaces, testpmd's run
 * directory). Returns their names.
 */
export function removeStale(): string[] {
  const out: string[] = [];
  try {
    for (const d of readdirSync('/var/run/dpdk')) {
      const m = /^bpk(\d+)$/.exec(d);
      if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) {
        rmSync(`/var/run/dpdk/${d}`, { recursive: true, force: true });
        out.push(`/var/run/dpdk/${d}`);
      }
    }
    if (out.length && readdirSync('/var/run/dpdk').length === 0) rmSync('/var/run/dpdk', { recursive: true });
  } catch {
    // No DPDK run directory.
  }
  for (const line of run('ip', ['netns', 'list'], { allowFail: true }).split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = NS_RE.exec(name);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) {
      run('ip', ['netns', 'del', name], { allowFail: true });
      out.push(name);
    }
  }
  return out;
}

function mac(ns: string, ifname: string): string {
  const j = JSON.parse(run('ip', ['-n', ns, '-j', 'link', 'show', ifname])) as { address: string }[];
  return j[0]!.address;
}

export function createTopology(): Topology {
  const tag = `p${process.pid.toString(36)}`;
  const base = `bpk${process.pid}`;
  const nsS = `${base}-snd`;
  const nsD = `${base}-dut`;
  const nsR = `${base}-rcv`;
  const [ifS, ifIn, ifOut, ifR, ifPaceIn, ifPaceOut] = [`${tag}s`, `${tag}i`, `${tag}o`, `${tag}r`, `${tag}g`, `${tag}h`];
  const destroy = () => {
    for (const ns of [nsS, nsD, nsR]) run('ip', ['netns', 'del', ns], { allowFail: true });
  };
  try {
    for (const ns of [nsS, nsD, nsR]) {
      run('ip', ['netns', 'add', ns]);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    run('ip', ['link', 'add', ifS, 'netns', nsS, 'type', 'veth', 'peer', 'name', ifIn, 'netns', nsD]);
    run('ip', ['link', 'add', ifOut, 'netns', nsD, 'type', 'veth', 'peer', 'name', ifR, 'netns', nsR]);
    run('ip', ['link', 'add', ifPaceIn, 'netns', nsS, 'type', 'veth', 'peer', 'name', ifPaceOut, 'netns', nsS]);
    for (const ifn of [ifPaceIn, ifPaceOut]) run('ip', ['-n', nsS, 'link', 'set', ifn, 'up']);
    const addrs: [string, string, string][] = [
      [nsS, ifS, '198.18.1.1/24'],
      [nsD, ifIn, '198.18.1.2/24'],
      [nsD, ifOut, '198.19.1.1/24'],
      [nsR, ifR, '198.19.1.2/24'],
    ];
    for (const [ns, ifn, a] of addrs) {
      run('ip', ['-n', ns, 'addr', 'add', a, 'dev', ifn]);
      run('ip', ['-n', ns, 'link', 'set', ifn, 'up']);
    }
    const t: Topology = {
      nsS,
      nsD,
      nsR,
      ifS,
      ifIn,
      ifOut,
      ifR,
      ifPaceIn,
      ifPaceOut,
      ipS: '198.18.1.1',
      ipIn: '198.18.1.2',
      ipOut: '198.19.1.1',
      ipR: '198.19.1.2',
      natAddr: '198.19.1.1',
      macS: mac(nsS, ifS),
      macIn: mac(nsD, ifIn),
      macOut: mac(nsD, ifOut),
      macR: mac(nsR, ifR),
      exec: (ns, cmd, args, opts) => run('ip', ['netns', 'exec', ns, cmd, ...args], opts),
      ifindex: (ns, ifname) => (JSON.parse(run('ip', ['-n', ns, '-j', 'link', 'show', ifname])) as { ifindex: number }[])[0]!.ifindex,
      destroy,
    };
    // The DUT's next hop without ARP: the kernel variant forwards to a static neighbour, the
    // others write the receiver's MAC themselves.
    run('ip', ['-n', nsD, 'neigh', 'replace', t.ipR, 'lladdr', t.macR, 'dev', ifOut, 'nud', 'permanent']);
    return t;
  } catch (err) {
    destroy();
    throw err;
  }
}

/**
 * Threaded NAPI on an interface (its NAPI poll in a kernel thread `napi/<ifname>-<id>` the bench
 * can measure and the scheduler can place, instead of softirq time on whatever CPU raised it).
 * The interface must have NAPI at that point (veth: an XDP program or GRO on).
 */
export function setThreaded(t: Topology, ns: string, ifname: string): void {
  t.exec(ns, 'sh', ['-c', `echo 1 > /sys/class/net/${ifname}/threaded`]);
}

/** XDP program ids attached to an interface (none: []). */
export function xdpProgIds(ns: string, ifname: string): number[] {
  const j = JSON.parse(run('ip', ['-n', ns, '-j', '-d', 'link', 'show', ifname])) as { xdp?: { prog?: { id: number }; attached?: { prog?: { id: number } }[] } }[];
  const x = j[0]?.xdp;
  if (!x) return [];
  return [x.prog?.id, ...(x.attached ?? []).map((a) => a.prog?.id)].filter((v): v is number => typeof v === 'number');
}
