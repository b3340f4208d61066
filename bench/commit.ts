/**
 * The commit a benchmark run measured, for its results file: BENCH_COMMIT when the run is from a
 * clean export (`git archive` is not a checkout, so git cannot tell), else the checkout's HEAD.
 */
import { execFileSync } from 'node:child_process';

export function benchCommit(dir: string): string {
  if (process.env.BENCH_COMMIT) return process.env.BENCH_COMMIT;
  try {
    return execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}
