/**
 * Start-up time of the CLI: how long `bpfctl --help`, `--version` and `prog ls` take from exec to
 * exit, next to `node -e 0` (Node's own start, the floor) and `bpftool prog show` measured in the
 * same rounds, interleaved so machine noise hits every command alike. Target: each bpfctl command
 * within 2.5x `node -e 0`. Runs the compiled CLI (`npm run build` first).
 *
 * Run: npm run bench -- startup   (writes bench/results/startup.json)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(repo, 'bin/bpfctl.js');

const COMMANDS: Record<string, readonly string[]> = {
  'node -e 0': [process.execPath, '-e', '0'],
  'bpfctl --version': [process.execPath, BIN, '--version'],
  'bpfctl --help': [process.execPath, BIN, '--help'],
  'bpfctl prog ls': [process.execPath, BIN, 'prog', 'ls'],
  'bpftool prog show': ['bpftool', 'prog', 'show'],
};

/** Wall time, CPU time (user + system: less disturbed by other load on a shared machine) and peak RSS. */
function timeOnce(argv: readonly string[]): { ms: number; cpuMs: number; rssKb: number } {
  const t = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', ...argv], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  const [rss, user, sys] = r.stderr.trim().split('\n').pop()!.split(' ').map(Number) as [number, number, number];
  return { ms, cpuMs: (user + sys) * 1000, rssKb: rss };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(opts: { quick?: boolean } = {}): Promise<object> {
  if (!existsSync(join(repo, 'dist/src/cli/main.js'))) throw new Error('bench/startup: run `npm run build` first');
  const rounds = opts.quick ? 5 : 21;
  const samples: Record<string, { ms: number[]; cpuMs: number[]; rssKb: number[] }> = {};
  for (const name of Object.keys(COMMANDS)) samples[name] = { ms: [], cpuMs: [], rssKb: [] };
  // One warm-up round: the page cache, not bpfctl, decides a cold first start.
  for (const argv of Object.values(COMMANDS)) timeOnce(argv);
  for (let i = 0; i < rounds; i++) {
    for (const [name, argv] of Object.entries(COMMANDS)) {
      const s = timeOnce(argv);
      samples[name]!.ms.push(s.ms);
      samples[name]!.cpuMs.push(s.cpuMs);
      samples[name]!.rssKb.push(s.rssKb);
    }
  }
  const floor = median(samples['node -e 0']!.ms);
  const cpuFloor = median(samples['node -e 0']!.cpuMs);
  const round1 = (x: number) => Math.round(x * 10) / 10;
  const rows = Object.entries(samples).map(([name, s]) => ({
    command: name,
    medianMs: round1(median(s.ms)),
    minMs: round1(Math.min(...s.ms)),
    vsNode: Math.round((median(s.ms) / floor) * 100) / 100,
    cpuMs: round1(median(s.cpuMs)),
    cpuVsNode: Math.round((median(s.cpuMs) / cpuFloor) * 100) / 100,
    rssMb: Math.round(median(s.rssKb) / 102.4) / 10,
  }));
  const cols = ['command', 'wall ms', 'min ms', 'x node', 'CPU ms', 'x node', 'RSS MB'];
  const w = [20, 9, 8, 7, 8, 7, 7];
  const line = (cells: (string | number)[]) => `${cells.map((c, i) => (i ? String(c).padStart(w[i]!) : String(c).padEnd(w[i]!))).join(' ')}\n`;
  process.stdout.write(line(cols) + `${'-'.repeat(w.reduce((a, b) => a + b + 1, -1))}\n`);
  for (const r of rows) process.stdout.write(line([r.command, r.medianMs, r.minMs, r.vsNode, r.cpuMs, r.cpuVsNode, r.rssMb]));
  const result = { when: new Date().toISOString(), node: process.version, rounds, target: 'each bpfctl command <= 2.5x node -e 0 (median of interleaved rounds)', rows };
  mkdirSync(join(repo, 'bench/results'), { recursive: true });
  writeFileSync(join(repo, 'bench/results/startup.json'), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) await run({ quick: process.argv.includes('--quick') });
