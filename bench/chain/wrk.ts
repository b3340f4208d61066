/**
 * Runs wrk (Debian's package) against a chain entry and reads its report: requests, requests/s
 * and the p50/p99/p99.9 latencies. The body is the bench's payload, POSTed through a generated
 * Lua script (one source for every variant), whose `done` hook prints the percentiles in
 * microseconds from wrk's own histogram (`--latency` prints no p99.9, and rounds to 2 digits).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLK_TCK } from './proc.ts';
import { PAYLOAD } from './work.ts';

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  /** Responses that were not 2xx/3xx, and socket errors (connect/read/write/timeout). */
  non2xx: number;
  errors: number;
  /** wrk's own CPU time (user + system), in seconds; NaN when it could not be read. */
  cpu_s: number;
}

// Generated (not committed) so that the payload has one source; a fixed path under the repo's
// build cache, rewritten by every run, so that nothing is left in /tmp by a killed bench.
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '../../.cache/bench/chain-post.lua');
let written = false;

function script(): string {
  if (!written) {
    mkdirSync(dirname(SCRIPT), { recursive: true });
    // wrk's Lua strings: the payload has no quotes or backslashes, but escape them anyway.
    const body = PAYLOAD.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
    writeFileSync(
      SCRIPT,
      [
        'wrk.method = "POST"',
        `wrk.body = "${body}"`,
        'wrk.headers["Content-Type"] = "application/octet-stream"',
        'done = function(summary, latency, requests)',
        '  io.write(string.format("percentiles-us %d %d %d\\n", latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))',
        'end',
        '',
      ].join('\n'),
    );
    written = true;
  }
  return SCRIPT;
}

function toUs(v: string, unit: string): number {
  const n = Number(v);
  return unit === 'us' ? n : unit === 'ms' ? n * 1e3 : unit === 's' ? n * 1e6 : unit === 'm' ? n * 6e7 : Number.NaN;
}

export function parseWrk(text: string): WrkResult {
  const reqs = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    return m ? toUs(m[1]!, m[2]!) : Number.NaN;
  };
  if (!reqs || !rps) throw new Error(`cannot read wrk's report:\n${text}`);
  // From the script's done hook: exact microseconds.
  const exact = /^percentiles-us (\d+) (\d+) (\d+)$/m.exec(text);
  const non = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    requests: Number(reqs[1]),
    seconds: toUs(reqs[2]!, reqs[3]!) / 1e6,
    rps: Number(rps[1]),
    p50_us: exact ? Number(exact[1]) : pct('50'),
    p99_us: exact ? Number(exact[2]) : pct('99'),
    p999_us: exact ? Number(exact[3]) : Number.NaN,
    non2xx: non ? Number(non[1]) : 0,
    errors: sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0,
    cpu_s: wrkCpu(text),
  };
}

/**
 * wrk runs under a shell that prints its own /proc stat after waiting for it: the children's
 * times there (cutime, cstime; clock ticks) are wrk's CPU, which tells whether the load generator,
 * not the chain, was the limit.
 */
const SHELL = '"$@"; rc=$?; echo "wrk-shell-stat $(cat /proc/$$/stat)"; exit $rc';

function wrkCpu(text: string): number {
  const m = /^wrk-shell-stat (.*)$/m.exec(text);
  if (!m) return Number.NaN;
  // comm may hold spaces: count from the last ')'. f[0] is field 3; cutime, cstime are 16, 17.
  const f = m[1]!.slice(m[1]!.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

/**
 * One wrk run; one thread (the 2-core machine also runs the chain), `connections` in flight.
 * `netns`: run it inside that network namespace (bench/nodes: the client sits on a namespace node);
 * nsenter execs wrk, so the shell's child times are still wrk's.
 */
export function runWrk(url: string, connections: number, seconds: number, netns?: string): Promise<WrkResult> {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '5s', '-s', script(), url];
  const cmd = netns ? ['nsenter', `--net=/run/netns/${netns}`, 'wrk'] : ['wrk'];
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', SHELL, 'sh', ...cmd, ...args], { encoding: 'utf8', timeout: (seconds + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      try {
        resolve(parseWrk(stdout));
      } catch (e) {
        reject(e);
      }
    });
  });
}
