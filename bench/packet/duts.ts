/**
 * The devices under test, each set up in the DUT namespace between the same two veths and torn
 * down again, leaving the namespace as it found it (checked: no XDP program left on either veth):
 *
 *   bpfctl        `bpfctl run` of a policy with the 2-NF packet chain nat -> count
 *                 (examples/packet-nat/nf/{snat,count}.c), event-driven; the classifier on the
 *                 ingress veth steers UDP into the chain (policy.ts in this directory)
 *   bpfctl-poll   the same chain with `poll: true` (its NF instances spin)
 *   bpfctl-coalesce
 *                 the same chain with `coalesce: { us: COALESCE_US }`: at moderate rates frames wait
 *                 in pktio for up to that long so that each process of the chain wakes once per
 *                 batch, not once per frame (docs/packet-chains.md, "Coalescing")
 *   bpfctl-ts     the chain with its counter in TypeScript (examples/packet-nat/nf/count.ts, the
 *                 twin of count.c): what a TypeScript packet function costs beside a C one
 *   kernel-nft    the kernel's IP forwarding with the NAT in nftables (ip_forward, an snat rule
 *                 in postrouting; conntrack, as any kernel NAT); GRO on the ingress veth, which
 *                 gives it NAPI like the other variants' XDP program does
 *   testpmd       dpdk-testpmd, net_af_xdp ports on both veths, mac forward mode (source MAC
 *                 of the port, destination the receiver's): DPDK's busy-polling model on the same
 *                 AF_XDP path, one forwarding core; no NAT
 *   xdp-redirect  fwd.bpf.c on the ingress veth: stateless source NAT, a counter, the MAC rewrite
 *                 and a devmap redirect to the egress veth (the eBPF limit for a stateless NF)
 *
 * Every variant's ingress veth gets threaded NAPI (topo.ts says why).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Child, spawnChild } from '../chain/proc.ts';
import { DUT_CPU, kthreads, onCpus, PINNED, pin, trees } from './cpu.ts';
import { attachForwarder } from './progs.ts';
import { setThreaded, type Topology, xdpProgIds } from './topo.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '../..');

export const VARIANTS = ['bpfctl', 'bpfctl-coalesce', 'bpfctl-ts', 'bpfctl-poll', 'kernel-nft', 'testpmd', 'xdp-redirect'] as const;
/** bpfctl-coalesce's window, us (PACKET_COALESCE_US to try another). */
export const COALESCE_US = Number(process.env.PACKET_COALESCE_US) > 0 ? Math.floor(Number(process.env.PACKET_COALESCE_US)) : 200;
export type VariantName = (typeof VARIANTS)[number];

export interface Dut {
  readonly name: VariantName;
  /** Whether the DUT rewrites the source address (the sink checks it did, frame by frame). */
  readonly nat: boolean;
  /** The DUT's processes and the NAPI threads of its veths, right now. */
  pids(): number[];
  /** The NAPI threads of its veths on the DUT's CPU again (XDP changes can make new ones). */
  pinThreads(): void;
  stop(): Promise<void>;
}

/** A variant that cannot run here (yet): the reason goes to the table and the JSON. */
export class Skipped extends Error {}

/** The NAPI threads of the DUT's two veths. */
function napiThreads(t: Topology): number[] {
  return [...kthreads(`napi/${t.ifIn}-`), ...kthreads(`napi/${t.ifOut}-`)];
}

/** The DUT namespace back to plain: nothing forwards, nothing attached, GRO off. */
export function resetDut(t: Topology): void {
  const x = t.exec;
  x(t.nsD, 'nft', ['flush', 'ruleset'], { allowFail: true });
  x(t.nsD, 'sysctl', ['-qw', 'net.ipv4.ip_forward=0']);
  for (const ifn of [t.ifIn, t.ifOut]) {
    x(t.nsD, 'ethtool', ['-K', ifn, 'gro', 'off'], { allowFail: true });
    x(t.nsD, 'ip', ['link', 'set', ifn, 'promisc', 'off'], { allowFail: true });
    const ids = xdpProgIds(t.nsD, ifn);
    if (ids.length) throw new Error(`XDP program ${ids.join(', ')} left on ${ifn} in ${t.nsD} by the last variant`);
  }
}

async function kernelNft(t: Topology): Promise<Dut> {
  const x = t.exec;
  x(t.nsD, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  x(t.nsD, 'ethtool', ['-K', t.ifIn, 'gro', 'on']);
  setThreaded(t, t.nsD, t.ifIn);
  x(t.nsD, 'nft', ['-f', '-'], {
    input: `table ip bench {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname "${t.ifOut}" ip protocol udp snat to ${t.natAddr}\n  }\n}\n`,
  });
  return {
    name: 'kernel-nft',
    nat: true,
    pids: () => napiThreads(t),
    pinThreads: () => pin(napiThreads(t), DUT_CPU),
    stop: async () => resetDut(t),
  };
}

async function xdpRedirect(t: Topology): Promise<Dut> {
  const fwd = attachForwarder(t);
  try {
    setThreaded(t, t.nsD, t.ifIn);
  } catch (err) {
    fwd.close();
    throw err;
  }
  return {
    name: 'xdp-redirect',
    nat: true,
    pids: () => napiThreads(t),
    pinThreads: () => pin(napiThreads(t), DUT_CPU),
    stop: async () => {
      fwd.close();
      resetDut(t);
    },
  };
}

/** What DPDK's EAL leaves under /var/run/dpdk even with --no-shconf: our prefix's directory. */
export function removeDpdkRun(): void {
  rmSync(`/var/run/dpdk/bpk${process.pid}`, { recursive: true, force: true });
  try {
    rmdirSync('/var/run/dpdk');
  } catch {
    // Not empty: another DPDK program's.
  }
}

function hasTestpmd(): boolean {
  return spawnSync('sh', ['-c', 'command -v dpdk-testpmd'], { encoding: 'utf8' }).status === 0;
}

async function testpmd(t: Topology): Promise<Dut> {
  if (!hasTestpmd()) throw new Skipped('dpdk-testpmd not installed (apt-get install dpdk)');
  // --no-huge/--no-pci: plain memory, no devices but the two AF_XDP vdevs; --no-shconf and a
  // prefix of our own: nothing under /var/run/dpdk shared with another DPDK process. lcore 1
  // forwards (busy-polls), lcore 0 waits on stdin; both on the DUT's CPU (or anywhere, unpinned).
  // stdbuf: testpmd's stdout is a pipe here, and its "Press enter to exit" (forwarding started)
  // would sit in a block buffer.
  const args = [
    'netns',
    'exec',
    t.nsD,
    'stdbuf',
    '-oL',
    'dpdk-testpmd',
    '--lcores',
    PINNED ? `0@${DUT_CPU},1@${DUT_CPU}` : '0@(0,1),1@(0,1)',
    '--no-huge',
    '--no-pci',
    '--no-shconf',
    '--file-prefix',
    `bpk${process.pid}`,
    '-m',
    '256',
    '--log-level',
    'lib.eal:warning',
    '--vdev',
    `net_af_xdp0,iface=${t.ifIn}`,
    '--vdev',
    `net_af_xdp1,iface=${t.ifOut}`,
    '--',
    '--forward-mode=mac',
    `--eth-peer=1,${t.macR}`,
    '--nb-cores=1',
    '--rxq=1',
    '--txq=1',
    '--total-num-mbufs=16384',
  ];
  const p = spawnChild('testpmd', ...onCpus(DUT_CPU, 'ip', args));
  try {
    await p.line(/Press enter to exit/, 30_000);
    setThreaded(t, t.nsD, t.ifIn);
  } catch (err) {
    await p.stop('SIGINT', 5000);
    removeDpdkRun();
    throw err;
  }
  return {
    name: 'testpmd',
    nat: false,
    pids: () => [...trees([p.pid]), ...napiThreads(t)],
    pinThreads: () => pin(napiThreads(t), DUT_CPU),
    stop: async () => {
      // Enter: testpmd stops forwarding, closes its ports (removing their XDP programs) and exits.
      p.send('');
      const t0 = Date.now();
      while (p.proc.exitCode === null && p.proc.signalCode === null && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
      await p.stop('SIGINT', 5000);
      removeDpdkRun();
      resetDut(t);
    },
  };
}

/** Why the bpfctl variants cannot run yet, or null when they can. */
export function bpfctlMissing(): string | null {
  const nf = join(repo, 'examples/packet-nat/nf');
  if (!existsSync(join(nf, 'snat.c')) || !existsSync(join(nf, 'count.c'))) return 'examples/packet-nat/nf/{snat,count}.c are not there yet';
  const help = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'bench/chain/bpfctl/cli.ts'), 'run', '--help'], { encoding: 'utf8', cwd: repo });
  if (!`${help.stdout}${help.stderr}`.includes('--netns')) return '`bpfctl run` has no --netns option yet';
  return null;
}

type Mode = 'event' | 'poll' | 'coalesce' | 'ts';

/** The policy of the bpfctl variants, in a temporary directory of its own. */
function writePolicy(t: Topology, mode: Mode): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), `bpfctl-bench-packet-${process.pid}-`));
  const nf = join(repo, 'examples/packet-nat/nf');
  const file = join(dir, 'policy.ts');
  writeFileSync(
    file,
    `// Written by bench/packet (duts.ts) for one run; removed when the variant stops.
import { definePolicy, toChain, xdpSection } from 'bpfctl';

export default definePolicy({
  name: 'bench-packet-${process.pid}${mode === 'event' ? '' : `-${mode}`}',
  pool: { bufferSize: 2048, bufferCount: 4096 },
  packetFunctions: {
    nat: {
      handler: ${JSON.stringify(join(nf, 'snat.c'))},
      env: { SNAT_ADDR: '${t.natAddr}', SNAT_PORTS: '20000-29999', SNAT_SRC_MAC: '${t.macOut}', SNAT_DST_MAC: '${t.macR}' },
    },
    count: { handler: ${JSON.stringify(join(nf, mode === 'ts' ? 'count.ts' : 'count.c'))} },
  },
  packetChains: {
    'nat-count': { functions: ['nat', 'count'], egress: { tx: '${t.ifOut}' }${mode === 'poll' ? ', poll: true' : mode === 'coalesce' ? `, coalesce: { us: ${COALESCE_US} }` : ''} },
  },
  xdp: [xdpSection({ interface: '${t.ifIn}', rules: [toChain('nat-count', { proto: 'udp' })] })],
});
`,
  );
  return { dir, file };
}

async function bpfctl(t: Topology, mode: Mode): Promise<Dut> {
  const missing = bpfctlMissing();
  if (missing) throw new Skipped(missing);
  const { dir, file } = writePolicy(t, mode);
  const name: VariantName = mode === 'event' ? 'bpfctl' : `bpfctl-${mode}`;
  let p: Child | undefined;
  try {
    // The whole process tree on the DUT's CPU: the supervisor's children inherit it.
    p = spawnChild(name, ...onCpus(DUT_CPU, process.execPath, ['--import', 'tsx', join(repo, 'bench/chain/bpfctl/cli.ts'), 'run', file, '--netns', t.nsD, '--json']));
    // With --json, `bpfctl run` prints one document once the chain is up.
    await p.line(/^\{.*"policy"/, 120_000);
    setThreaded(t, t.nsD, t.ifIn);
  } catch (err) {
    await p?.stop('SIGTERM', 15_000);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const child = p;
  return {
    name,
    nat: true,
    pids: () => [...trees([child.pid]), ...napiThreads(t)],
    pinThreads: () => pin(napiThreads(t), DUT_CPU),
    stop: async () => {
      await child.stop('SIGTERM', 15_000);
      rmSync(dir, { recursive: true, force: true });
      resetDut(t);
    },
  };
}

export async function startDut(name: VariantName, t: Topology): Promise<Dut> {
  resetDut(t);
  switch (name) {
    case 'kernel-nft':
      return kernelNft(t);
    case 'xdp-redirect':
      return xdpRedirect(t);
    case 'testpmd':
      return testpmd(t);
    case 'bpfctl':
      return bpfctl(t, 'event');
    case 'bpfctl-coalesce':
      return bpfctl(t, 'coalesce');
    case 'bpfctl-poll':
      return bpfctl(t, 'poll');
    case 'bpfctl-ts':
      return bpfctl(t, 'ts');
  }
}
