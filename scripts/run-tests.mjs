#!/usr/bin/env node
// `npm test`: uvu over every *.test.ts, then the machine-wide final check. uvu exits 0 when a
// suite's before() hook throws (its tests are counted but neither passed nor failed), so the
// totals are read back and any test that did not pass fails the run. Ends with one plain
// "N passed, N failed" line.
import { spawn } from 'node:child_process';

const dirs = process.argv.slice(2);
const args = ['uvu', '-r', 'tsx', ...(dirs.length ? dirs : ['test']), '\\.test\\.ts$'];
const child = spawn('npx', ['--no-install', ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
child.stdout.on('data', (b) => {
  out += b;
  process.stdout.write(b);
});
const code = await new Promise((r) => child.on('close', r));
const num = (label) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(out)?.[1] ?? Number.NaN);
const total = num('Total');
const passed = num('Passed');
const skipped = num('Skipped');
if (!Number.isFinite(total)) {
  process.stdout.write(`\nuvu printed no totals (exit ${code})\n0 passed, 1 failed\n`);
  process.exit(1);
}
const failed = total - passed - skipped;
let finalOk = true;
if (code === 0 && failed === 0 && !dirs.length) {
  const fc = spawn(process.execPath, ['--import', 'tsx', 'test/final-check.ts'], { stdio: 'inherit' });
  finalOk = (await new Promise((r) => fc.on('close', r))) === 0;
}
if (failed > 0 && code === 0) process.stdout.write(`\n${failed} test(s) neither passed nor failed: a before() hook of their suite threw (see above)\n`);
process.stdout.write(`\n${passed} passed, ${failed + (finalOk ? 0 : 1)} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exit(code === 0 && failed === 0 && finalOk ? 0 : 1);
