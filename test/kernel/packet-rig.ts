/**
 * The rig packet-chain tests share: three namespaces the test creates and removes,
 *
 *   sender (sX) ──veth──► DUT (dIn ... dOut) ──veth──► receiver (rX)
 *
 * raw frames sent and captured byte for byte with AF_PACKET (python3, fixtures/rawpkt.py), and
 * `bpfctl` run as its users run it (the compiled CLI, its own pin root, cgroup and run dir).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BPFCTL_BIN } from '../helpers/dist.ts';
import { sh } from '../helpers/sh.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
export const RAW = join(repo, 'test/kernel/fixtures/rawpkt.py');
export const NF_DIR = join(repo, 'examples/packet-nat/nf');

export interface Rig {
  readonly ns: { s: string; d: string; r: string };
  readonly ifs: { sX: string; dIn: string; dOut: string; rX: string };
  readonly ip: { s: string; dIn: string; dOut: string; r: string };
  readonly mac: Record<string, string>;
  readonly env: NodeJS.ProcessEnv;
  destroy(): void;
}

export function createRig(id: string, tag: string, net: number): Rig {
  const ns = { s: `${tag}s`, d: `${tag}d`, r: `${tag}r` };
  const ifs = { sX: `${tag}sx`, dIn: `${tag}in`, dOut: `${tag}out`, rX: `${tag}rx` };
  const ip = { s: `198.18.${net}.1`, dIn: `198.18.${net}.2`, dOut: `198.19.${net}.2`, r: `198.19.${net}.1` };
  const mac: Record<string, string> = {};
  const destroy = () => {
    for (const n of Object.values(ns)) sh('ip', ['netns', 'del', n], { allowFail: true });
  };
  try {
    for (const n of Object.values(ns)) sh('ip', ['netns', 'add', n]);
    sh('ip', ['link', 'add', ifs.sX, 'netns', ns.s, 'type', 'veth', 'peer', 'name', ifs.dIn, 'netns', ns.d]);
    sh('ip', ['link', 'add', ifs.dOut, 'netns', ns.d, 'type', 'veth', 'peer', 'name', ifs.rX, 'netns', ns.r]);
    const up = (n: string, ifn: string, addr: string) => {
      sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', n, 'addr', 'add', `${addr}/24`, 'dev', ifn]);
      sh('ip', ['-n', n, 'link', 'set', ifn, 'up']);
      mac[ifn] = JSON.parse(sh('ip', ['-n', n, '-j', 'link', 'show', 'dev', ifn]))[0].address;
    };
    up(ns.s, ifs.sX, ip.s);
    up(ns.d, ifs.dIn, ip.dIn);
    up(ns.d, ifs.dOut, ip.dOut);
    up(ns.r, ifs.rX, ip.r);
  } catch (err) {
    destroy();
    throw err;
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BPFCTL_BPFFS: `/sys/fs/bpf/${id}`,
    BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${id}`,
    BPFCTL_RUN_DIR: `/tmp/${id}-run`,
  };
  delete env.FORCE_COLOR;
  return { ns, ifs, ip, mac, env, destroy };
}

export function cli(rig: Rig, args: string[], netns?: string): { status: number | null; stdout: string; stderr: string } {
  const argv = netns ? ['nsenter', [`--net=/run/netns/${netns}`, process.execPath, BPFCTL_BIN, ...args]] : [process.execPath, [BPFCTL_BIN, ...args]];
  const r = spawnSync(argv[0] as string, argv[1] as string[], { env: rig.env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface Running {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
  /** The JSON `bpfctl run --json` printed once it was up. */
  started: Record<string, unknown>;
}

/** `bpfctl run ARGS --json` (inside `netns` when given), resolved once it printed its first line. */
export async function startRun(rig: Rig, args: string[], netns?: string): Promise<Running> {
  const full = [BPFCTL_BIN, 'run', ...args, '--json'];
  const child = netns ? spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, ...full], { env: rig.env, stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(process.execPath, full, { env: rig.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const r: Running = { child, stdout: '', stderr: '', exited: new Promise((res) => child.once('exit', (c) => res(c))), started: {} };
  child.stdout!.setEncoding('utf8').on('data', (t: string) => {
    r.stdout += t;
  });
  child.stderr!.setEncoding('utf8').on('data', (t: string) => {
    r.stderr += t;
  });
  const deadline = Date.now() + 90_000;
  while (!r.stdout.includes('\n')) {
    if (child.exitCode !== null) throw new Error(`bpfctl run exited ${child.exitCode}:\n${r.stderr}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`bpfctl run did not start:\n${r.stderr}`);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  r.started = JSON.parse(r.stdout.split('\n')[0]!);
  return r;
}

/** A test file's end: its `bpfctl run` stopped (Ctrl-C, as a user would), the rig, its directory and the run directory removed. */
export async function tearDown(rig: Rig, run: Running | null, dir: string): Promise<void> {
  if (run && run.child.exitCode === null) {
    run.child.kill('SIGINT');
    await run.exited;
  }
  rig.destroy();
  rmSync(dir, { recursive: true, force: true });
  rmSync(rig.env.BPFCTL_RUN_DIR!, { recursive: true, force: true });
}

/** Frames captured on `ifn` in `ns` while `during` runs (for `ms` in all), as bytes. */
export async function capture(ns: string, ifn: string, ms: number, during: () => Promise<void> | void): Promise<Uint8Array[]> {
  const p = spawn('ip', ['netns', 'exec', ns, 'python3', RAW, 'capture', ifn, String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.setEncoding('utf8').on('data', (t: string) => {
    out += t;
  });
  const exited = new Promise((res) => p.once('exit', res));
  while (!out.includes('ready')) {
    if (p.exitCode !== null) throw new Error('capture helper exited before it was ready');
    await new Promise((res) => setTimeout(res, 20));
  }
  await during();
  await exited;
  return out
    .split('\n')
    .filter((l) => /^[0-9a-f]+$/.test(l))
    .map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
}

export function send(ns: string, ifn: string, frames: Uint8Array[], gapMs = 2): void {
  sh('ip', ['netns', 'exec', ns, 'python3', RAW, 'send', ifn, String(gapMs), ...frames.map((f) => Buffer.from(f).toString('hex'))]);
}

/** `ip netns exec NS python3 rawpkt.py flood ...`: about `pps` copies of `frame` for `seconds`. */
export function flood(ns: string, ifn: string, seconds: number, pps: number, frame: Uint8Array): Promise<number> {
  const p = spawn('ip', ['netns', 'exec', ns, 'python3', RAW, 'flood', ifn, String(seconds), String(pps), Buffer.from(frame).toString('hex')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.setEncoding('utf8').on('data', (t: string) => {
    out += t;
  });
  return new Promise((res) => p.once('exit', () => res(Number(out.trim()) || 0)));
}

export const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
export const ipText = (b: Uint8Array, o: number) => [...b.subarray(o, o + 4)].join('.');
export const macText = (b: Uint8Array, o: number) => [...b.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
export const isUdpTo = (f: Uint8Array, port: number) => f.length >= 42 && be16(f, 12) === 0x0800 && f[23] === 17 && be16(f, 36) === port;
export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
export const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
