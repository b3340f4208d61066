/**
 * `bpfctl gen types`: a skeleton for every corpus object, type-checked with the project's strict
 * settings together with user code that must (and must not) compile against it, then two
 * skeletons used for real: globals set before load by typed name, maps read as typed structs
 * (checked against the kernel's BTF by TypedMap), a program attached and its counters read.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { main } from '../../src/cli/main.ts';
import { generateTypes } from '../../src/cli/commands/gen.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { objectFile, objectsDir } from '../objects/build.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// Outside tsconfig's include (so nobody else's type check sees it while it exists).
const out = join(repo, `.gen-test-${process.pid}`);
const sources = join(repo, 'test/objects');
const corpus = readdirSync(sources)
  .filter((f) => f.endsWith('.bpf.c') && !f.startsWith('bad_'))
  .map((f) => f.replace(/\.bpf\.c$/, ''));
let before: Snapshot;

test.before(async () => {
  await new Promise((r) => setTimeout(r, 500)); // let tsx settle its cache fds (see objects-maps)
  before = snapshot();
  mkdirSync(out, { recursive: true });
});

test('gen types writes a module per object that type-checks strictly, with user code against it', async () => {
  for (const name of corpus) writeFileSync(join(out, `${name}.ts`), generateTypes(objectFile(name), '..'));
  // The CLI writes the same module, with imports relative to where it goes.
  let stdout = '';
  const code = await main(['gen', 'types', objectFile('xdp_stats_percpu'), '-o', join(out, 'cli.ts')], { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: () => true } });
  assert.is(code, 0);
  assert.match(stdout, /wrote .*cli\.ts/);
  writeFileSync(
    join(out, 'user.ts'),
    `import { BootstrapExec } from './bootstrap_exec.ts';
import { XdpStatsPercpu, type Datarec } from './xdp_stats_percpu.ts';
import { LpmBlocklist } from './lpm_blocklist.ts';
const b = BootstrapExec.open();
b.setGlobal('max_events', 5n);
b.setGlobal('greeting', 'hi');
// @ts-expect-error max_events is a u64: a bigint, not a number
b.setGlobal('max_events', 5);
// @ts-expect-error no such global
b.setGlobal('nope', 1);
const seen: bigint = b.global('events_seen');
const x = XdpStatsPercpu.open();
const rec: Datarec | undefined = x.maps.xdp_stats_map.getSum(2);
const pk: bigint | undefined = rec?.rx_packets;
// @ts-expect-error keys are u32 numbers
x.maps.xdp_stats_map.getSum('2');
const l = LpmBlocklist.open();
l.maps.blocklist.set({ prefixlen: 24, addr: 0x12c6 }, 0n);
// @ts-expect-error the key struct needs both fields
l.maps.blocklist.set({ prefixlen: 24 }, 0n);
export { seen, pk };
`,
  );
  const files = readdirSync(out).filter((f) => f.endsWith('.ts'));
  writeFileSync(join(out, 'tsconfig.json'), JSON.stringify({ extends: '../tsconfig.json', include: [], files }));
  try {
    execFileSync(join(repo, 'node_modules/.bin/tsc'), ['--noEmit', '-p', join(out, 'tsconfig.json')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    assert.unreachable(`generated modules do not type-check:\n${(err as { stdout?: string }).stdout}`);
  }
});

test('a skeleton in use: const volatile config, typed globals, typed maps, an attached program', () => {
  // In a child: tsx would otherwise start its transform service in this process for the new modules.
  writeFileSync(
    join(out, 'use.ts'),
    `import koffi from 'koffi';
import { BootstrapExec } from './bootstrap_exec.ts';
import { XdpStatsPercpu } from './xdp_stats_percpu.ts';
const getppid = koffi.load('libc.so.6').func('int getppid(void)') as () => number;
const out: Record<string, unknown> = {};
const skel = BootstrapExec.open(${JSON.stringify(objectFile('bootstrap_exec'))});
try {
  skel.setGlobal('target_pid', process.pid);
  skel.setGlobal('max_events', 3n);
  out.maxEventsBefore = skel.global('max_events');
  skel.load();
  const link = skel.progs.handle_getppid.attachTracepoint('syscalls', 'sys_enter_getppid');
  try {
    for (let i = 0; i < 5; i++) getppid();
  } finally {
    link.close();
  }
  out.pid = process.pid;
  out.eventsSeen = skel.global('events_seen');
  out.bss = skel.maps.bss.get(0);
  out.rodata = skel.maps.rodata.get(0);
  skel.setGlobal('events_seen', 0n);
  out.afterReset = skel.maps.bss.get(0)?.events_seen;
} finally {
  skel.close();
}
const x = XdpStatsPercpu.open(${JSON.stringify(objectFile('xdp_stats_percpu'))});
try {
  try {
    x.maps;
  } catch (e) {
    out.beforeLoad = (e as Error).message;
  }
  x.load();
  x.progs.xdp_pass_func.testRun(new Uint8Array(60), { repeat: 3 });
  out.stats = x.maps.xdp_stats_map.getSum(2);
} finally {
  x.close();
}
process.stdout.write(JSON.stringify(out, (_k, v) => (typeof v === 'bigint' ? \`\${v}n\` : v)));
`,
  );
  const r = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', join(out, 'use.ts')], { cwd: repo, encoding: 'utf8' })) as Record<string, unknown>;
  const pid = r.pid as number;
  assert.is(r.maxEventsBefore, '3n');
  assert.is(r.eventsSeen, '3n', 'max_events=3 caps the count');
  assert.equal(r.bss, { last_pid: pid, events_seen: '3n', events_dropped: '0n' });
  assert.equal(r.rodata, { target_pid: pid, max_events: '3n', greeting: 'bootstrap' });
  assert.is(r.afterReset, '0n');
  assert.match(String(r.beforeLoad), /call load\(\) before using maps/);
  assert.equal(r.stats, { rx_packets: '3n', rx_bytes: '180n' });
});

test('nothing leaks', async () => {
  rmSync(out, { recursive: true, force: true });
  rmSync(objectsDir, { recursive: true, force: true });
  assert.equal(await leaksSince(before), []);
});

test.run();
