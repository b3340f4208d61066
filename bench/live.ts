/**
 * Live control under load (part of the chain benchmarks): the hello-chain example run by the
 * supervisor, wrk -c32 on /hello; after an unrecorded warm-up, six rounds of a steady phase
 * followed by one where routes change every 100 ms. Reports requests/s and p99 of each phase, the
 * median of the paired changing/steady ratios, failed requests, and how long after a route change
 * returns the first request is served on the new route (request by request, 40 changes).
 *
 * Run: node --import tsx bench/live.ts [--quick]   (root; writes bench/results/live.json)
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Chain, startChain } from '../src/runtime/supervisor/index.ts';
import { runWrk, type WrkResult } from './chain/wrk.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');

function post(url: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// Same length and the same functions in another order: the changing phase does the same work per
// request as the steady ones, so the difference is the cost of the changes.
const ROUTES = [
  ['upper', 'reverse', 'stamp'],
  ['reverse', 'upper', 'stamp'],
];

interface Phase {
  phase: string;
  rps: number;
  p99_us: number;
  failed: number;
  route_changes: number;
}

/** How long each route change took to write (ms), over all changing phases. */
const changeMs: number[] = [];

async function phase(chain: Chain, name: string, seconds: number, churn: boolean): Promise<Phase> {
  let changes = 0;
  let stop = false;
  const churner = (async () => {
    while (churn && !stop) {
      const t0 = process.hrtime.bigint();
      await chain.changeRoutes([{ op: 'set', route: '/hello', functions: ROUTES[changes % ROUTES.length]! }]);
      changeMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      changes++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const w: WrkResult = await runWrk(`${chain.url}hello`, 32, seconds);
  stop = true;
  await churner;
  return { phase: name, rps: w.rps, p99_us: w.p99_us, failed: w.non2xx + w.errors, route_changes: changes };
}

/**
 * ms from a route change returning to the first answer computed on the new route, and how many
 * requests that took (1: the very first request after the change already took the new route).
 */
async function propagation(chain: Chain, n: number): Promise<{ ms: number[]; firstTry: number }> {
  const out: number[] = [];
  let firstTry = 0;
  const url = `${chain.url}hello`;
  for (let i = 0; i < n; i++) {
    const rev = i % 2 === 0;
    const want = rev ? 'dlrow olleh' : 'HELLO WORLD [/hello]';
    await chain.changeRoutes([{ op: 'set', route: '/hello', functions: rev ? ['reverse'] : ['upper', 'stamp'] }]);
    const t0 = process.hrtime.bigint();
    for (let tries = 1; tries <= 1000; tries++) {
      if ((await post(url, 'hello world')) === want) {
        if (tries === 1) firstTry++;
        break;
      }
    }
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms: out, firstTry };
}

export async function run(opts: { quick?: boolean } = {}): Promise<unknown> {
  const seconds = opts.quick ? 3 : 6;
  const rounds = opts.quick ? 1 : 6;
  const work = join(repo, '.cache/bench', `live-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  cpSync(join(repo, 'examples/hello-chain'), work, { recursive: true });
  const policy = join(work, 'policy.ts');
  writeFileSync(policy, readFileSync(policy, 'utf8').replace("name: 'hello-chain'", "name: 'bench-live'"));
  const chain = await startChain(policy, { log: () => {} });
  try {
    // Not recorded: the first seconds of load are V8 compiling the hot paths of every process.
    await phase(chain, 'warm-up', opts.quick ? 2 : 5, false);
    // Steady and changing phases alternate, and each changing phase is compared with the steady
    // one just before it: the machine's noise drifts over tens of seconds, pairs stay close.
    const phases: Phase[] = [];
    const ratios: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const a = await phase(chain, `steady (round ${round})`, seconds, false);
      const b = await phase(chain, `routes change every 100 ms (round ${round})`, seconds, true);
      phases.push(a, b);
      ratios.push(b.rps / a.rps);
    }
    const sortedRatios = [...ratios].sort((x, y) => x - y);
    const p = await propagation(chain, 40);
    const prop = p.ms.sort((a, b) => a - b);
    const result = {
      phases,
      ratios_rps_changing_vs_steady: ratios,
      ratio_rps_changing_vs_steady: sortedRatios[Math.floor(sortedRatios.length / 2)]!,
      failed_requests: phases.reduce((n, p) => n + p.failed, 0),
      route_change_ms: (() => {
        const c = [...changeMs].sort((x, y) => x - y);
        return { median: c[Math.floor(c.length / 2)] ?? 0, max: c[c.length - 1] ?? 0, samples: c.length };
      })(),
      first_request_after_change_on_new_route: `${p.firstTry}/${prop.length}`,
      propagation_ms: { median: prop[Math.floor(prop.length / 2)]!, p90: prop[Math.floor(prop.length * 0.9)]!, max: prop[prop.length - 1]!, samples: prop.length },
      machine: { cpus: os.cpus().length, kernel: os.release(), node: process.version, when: new Date().toISOString() },
    };
    const rows = phases.map((p) => `| ${p.phase.padEnd(28)} | ${Math.round(p.rps).toString().padStart(7)} | ${Math.round(p.p99_us).toString().padStart(7)} | ${String(p.failed).padStart(6)} | ${String(p.route_changes).padStart(7)} |`);
    process.stdout.write(
      [
        '| phase                        |   req/s | p99 us | failed | changes |',
        '|------------------------------|---------|--------|--------|---------|',
        ...rows,
        '',
        `changing / steady req/s, median of ${ratios.length} paired rounds: ${result.ratio_rps_changing_vs_steady.toFixed(2)}x (${sortedRatios.map((r) => r.toFixed(2)).join(', ')}; target >= 0.9x), failed requests: ${result.failed_requests} (target 0)`,
        `writing one route change (in the supervisor, under load): median ${result.route_change_ms.median.toFixed(2)} ms, max ${result.route_change_ms.max.toFixed(2)} ms`,
        `route change -> first request on the new route: median ${result.propagation_ms.median.toFixed(2)} ms, p90 ${result.propagation_ms.p90.toFixed(2)} ms, max ${result.propagation_ms.max.toFixed(2)} ms (${prop.length} changes; the first request after the change took the new route in ${p.firstTry})`,
        '',
      ].join('\n'),
    );
    mkdirSync(join(here, 'results'), { recursive: true });
    writeFileSync(join(here, 'results/live.json'), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    await chain.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run({ quick: process.argv.includes('--quick') });
