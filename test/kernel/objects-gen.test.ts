/**
 * `bpfctl gen types`: a skeleton for every corpus object, type-checked with the project's strict
 * settings together with user code that must (and must not) compile against it, then two
 * skeletons used for real: globals set before load by typed name, maps read as typed structs
 * (checked against the kernel's BTF by TypedMap), a program attached and its counters read.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { main } from '../../src/cli/main.ts';
import { generateTypes } from '../../src/cli/commands/gen.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { objectFile, objectsDir, syscalls } from '../objects/build.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// Outside tsconfig's include (so nobody else's type check sees it while it exists).
const out = join(repo, `.gen-test-${process.pid}`);
const sources = join(repo, 'test/objects');
const corpus = readdirSync(sources)
  .filter((f) => f.endsWith('.bpf.c') && !f.startsWith('bad_'))
  .map((f) => f.replace(/\.bpf\.c$/, ''));
let before: Snapshot;
// biome-ignore lint/suspicious/noExplicitAny: the generated modules exist only while the test runs (they are type-checked above)
type Generated = Record<string, any>;
const load = (path: string) => createRequire(import.meta.url)(path) as Generated;

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

test('a skeleton in use: const volatile config, typed globals, typed maps, an attached program', async () => {
  // Through the same module loader as this file, so the loader (and libbpf) is loaded once.
  const { BootstrapExec } = load(join(out, 'bootstrap_exec.ts'));
  const skel = BootstrapExec.open(objectFile('bootstrap_exec'));
  try {
    skel.setGlobal('target_pid', process.pid);
    skel.setGlobal('max_events', 3n);
    assert.is(skel.global('max_events'), 3n);
    skel.load();
    const link = skel.progs.handle_getppid.attachTracepoint('syscalls', 'sys_enter_getppid');
    try {
      for (let i = 0; i < 5; i++) syscalls.getppid();
    } finally {
      link.close();
    }
    assert.is(skel.global('events_seen'), 3n);
    assert.equal(skel.maps.bss.get(0), { last_pid: process.pid, events_seen: 3n, events_dropped: 0n });
    assert.equal(skel.maps.rodata.get(0), { target_pid: process.pid, max_events: 3n, greeting: 'bootstrap' });
    skel.setGlobal('events_seen', 0n);
    assert.is(skel.maps.bss.get(0)?.events_seen, 0n);
  } finally {
    skel.close();
  }
  const { XdpStatsPercpu } = load(join(out, 'xdp_stats_percpu.ts'));
  const x = XdpStatsPercpu.open(objectFile('xdp_stats_percpu'));
  try {
    assert.throws(() => x.maps, /call load\(\) before using maps/);
    x.load();
    x.progs.xdp_pass_func.testRun(new Uint8Array(60), { repeat: 3 });
    assert.equal(x.maps.xdp_stats_map.getSum(2), { rx_packets: 3n, rx_bytes: 180n });
  } finally {
    x.close();
  }
});

test('nothing leaks', async () => {
  // tsx writes its transform cache of the generated modules asynchronously (an fd each meanwhile).
  await new Promise((r) => setTimeout(r, 1000));
  rmSync(out, { recursive: true, force: true });
  rmSync(objectsDir, { recursive: true, force: true });
  assert.equal(leaksSince(before), []);
});

test.run();
