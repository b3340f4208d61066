/**
 * The compiled CLI (`dist/`, what `bin/bpfctl.js` runs) for tests that run bpfctl as its users do:
 * built unless it is newer than every source it is built from (`npm test` builds it as pretest,
 * so a whole run builds once; a file run alone builds it here).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
export const BPFCTL_BIN = join(repo, 'bin/bpfctl.js');

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Runs `npm run build` when dist/ is missing or older than src/ or loader/. @throws when the build fails */
export function ensureBuilt(): void {
  const main = join(repo, 'dist/src/cli/main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= Math.max(newestSource(join(repo, 'src')), newestSource(join(repo, 'loader')))) return;
  execFileSync('npm', ['run', 'build'], { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'] });
}
