/**
 * Runs after the whole suite: nothing any test created may still be loaded, pinned or configured
 * on the machine. Per-file checks catch most leaks; this catches what slips between files.
 */
import { existsSync, readdirSync } from 'node:fs';
import { sh } from './helpers/sh.ts';

const problems: string[] = [];
const bpffs = '/sys/fs/bpf';
for (const entry of existsSync(bpffs) ? readdirSync(bpffs) : []) {
  if (entry.startsWith('bpfctl-test')) problems.push(`pin directory left: ${bpffs}/${entry}`);
}
for (const ns of sh('ip', ['netns', 'list'], { allowFail: true }).split('\n')) {
  if (/^bt\d/.test(ns)) problems.push(`network namespace left: ${ns.split(' ')[0]}`);
}
const progs = JSON.parse(sh('bpftool', ['-j', 'prog', 'show'], { allowFail: true }) || '[]') as { id: number; type: string; name?: string }[];
for (const p of progs) {
  if (['sk_msg', 'sock_ops', 'xdp', 'sk_skb'].includes(p.type)) problems.push(`program left loaded: ${p.id} ${p.type} ${p.name ?? ''}`);
}
const cg = '/sys/fs/cgroup/unified';
for (const entry of existsSync(cg) ? readdirSync(cg) : []) {
  if (entry.startsWith('bpfctl-test')) problems.push(`cgroup left: ${cg}/${entry}`);
}
if (problems.length) {
  process.stderr.write(`final check: the test suite left things behind:\n  ${problems.join('\n  ')}\n`);
  process.exit(1);
}
process.stdout.write('final check: nothing left loaded, pinned or configured\n');
