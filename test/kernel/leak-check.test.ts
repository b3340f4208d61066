/**
 * The leak snapshot can fail: each kind of object it claims to see is leaked here on purpose, and
 * the comparison must name it. Then everything is cleaned up and the file's own check is clean.
 * It also shows the attribution rule at work: a pin under another run's root is not ours, and a
 * snapshot that cannot run bpftool throws instead of seeing nothing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BpfObject, unpin } from '../../loader/index.ts';
import { fixtureObject } from '../fixtures/fixture-path.ts';
import { compare, hiddenFailures, leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { sh } from '../helpers/sh.ts';

const tag = `bpfctl-test-${process.pid}-leakcheck`;
const pinRoot = `/sys/fs/bpf/${tag}`;
const foreignRoot = `/sys/fs/bpf/bpfctl-test-1-leakcheck`; // pid 1: a live process that is not us
const cgroup = `/sys/fs/cgroup/unified/${tag}`;
const poolFile = `/dev/shm/bpfctl-pool-test-${process.pid}-leakcheck`;
const runDir = `/tmp/${tag}-run`;
const netns = `bt${process.pid % 100000}lk1`;
const iface = `bt${process.pid % 100000}lk2`;

let before: Snapshot;
test.before(() => {
  before = snapshot();
});

/** The problem line of that kind naming `needle`, or a failure listing what was reported. */
function reported(problems: string[], prefix: string, needle: string): void {
  const hit = problems.some((p) => p.startsWith(prefix) && p.includes(needle));
  assert.ok(hit, `expected "${prefix}" naming ${needle}; reported:\n  ${problems.join('\n  ')}`);
}

test('every kind of leak is reported, and only ours', async () => {
  const start = snapshot();
  const obj = BpfObject.open(fixtureObject('sockops-count'));
  let map: BpfMap | undefined;
  let pinned: BpfMap | undefined;
  let foreign: BpfMap | undefined;
  let child: ChildProcess | undefined;
  const server = createServer();
  let fd = -1;
  let linkClose: (() => void) | undefined;
  try {
    // BPF objects: a program (and its maps) held by this process, a map, a link, a pin whose map
    // only the pin holds, and a pin under another run's root (not ours: must not be reported).
    obj.load();
    const prog = obj.program('count_established');
    map = BpfMap.create({ type: 'hash', name: 'leak_map', keySize: 4, valueSize: 4, maxEntries: 4 });
    mkdirSync(cgroup);
    const link = prog.attachCgroup(cgroup);
    linkClose = () => link.close();
    mkdirSync(pinRoot, { recursive: true });
    pinned = BpfMap.create({ type: 'array', name: 'leak_pinned', keySize: 4, valueSize: 4, maxEntries: 1 });
    pinned.pin(`${pinRoot}/pinned`);
    const pinnedId = pinned.id;
    pinned.close();
    pinned = undefined;
    mkdirSync(foreignRoot, { recursive: true });
    foreign = BpfMap.create({ type: 'array', name: 'leak_foreign', keySize: 4, valueSize: 4, maxEntries: 1 });
    foreign.pin(`${foreignRoot}/m`);
    const foreignId = foreign.id;
    foreign.close();
    foreign = undefined;

    // The rest: a pool file, a run directory, a child process, a listening socket, a netns, an
    // interface, an fd.
    writeFileSync(poolFile, 'x');
    mkdirSync(runDir);
    child = spawn('sleep', ['60'], { stdio: 'ignore' });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    sh('ip', ['netns', 'add', netns]);
    sh('ip', ['link', 'add', iface, 'type', 'veth', 'peer', 'name', `${iface}p`]);
    fd = openSync('/dev/null', 'r');

    const problems = compare(start, snapshot());
    reported(problems, 'progs still loaded', `${prog.id}=sock_ops/`);
    reported(problems, 'progs still loaded', 'held by node');
    reported(problems, 'maps still loaded', `${map.id}=hash/leak_map`);
    reported(problems, 'maps still loaded', `${pinnedId}=array/leak_pinned pinned at ${pinRoot}/pinned`);
    reported(problems, 'links still loaded', `${link.id}=`);
    reported(problems, 'pins left', `${pinRoot}/pinned`);
    reported(problems, 'cgroups left', cgroup);
    reported(problems, 'pool files left', poolFile);
    reported(problems, 'run/temporary/cache directories left', runDir);
    reported(problems, 'processes left', `${child.pid} sleep`);
    reported(problems, 'listening sockets left', `tcp 127.0.0.1:${port}`);
    reported(problems, 'network namespaces left', netns);
    reported(problems, 'interfaces left', iface);
    reported(problems, 'file descriptors left open', `${fd} -> /dev/null`);
    // Another run's pin and the map only it holds are theirs.
    assert.not.ok(
      problems.some((p) => p.includes(foreignRoot) || p.includes(`${foreignId}=`)),
      `another run's pin reported as ours:\n  ${problems.join('\n  ')}`,
    );
  } finally {
    linkClose?.();
    obj.close();
    map?.close();
    pinned?.close();
    foreign?.close();
    unpin(`${pinRoot}/pinned`);
    unpin(`${foreignRoot}/m`);
    rmdirSync(pinRoot);
    rmdirSync(foreignRoot);
    rmdirSync(cgroup);
    rmSync(poolFile, { force: true });
    rmSync(runDir, { recursive: true, force: true });
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    server.close();
    sh('ip', ['netns', 'del', netns], { allowFail: true });
    sh('ip', ['link', 'del', iface], { allowFail: true });
    if (fd >= 0) closeSync(fd);
  }
  // Cleaned up: the same comparison is clean again.
  assert.equal(await leaksSince(start), []);
});

test('an orphan program (no holder, no pin) that appeared is a leak', async () => {
  const start = snapshot();
  sh('ip', ['link', 'add', iface, 'type', 'veth', 'peer', 'name', `${iface}p`]);
  try {
    const obj = BpfObject.open(fixtureObject('xdp-pass-drop'));
    obj.load();
    const prog = obj.programs[0]!.name;
    const p = obj.program(prog);
    const id = p.id;
    // Legacy netlink attach: the interface keeps the program; then every fd of ours is closed.
    p.pin(`/sys/fs/bpf/${tag}-xdp`);
    obj.close();
    sh('ip', ['link', 'set', 'dev', iface, 'xdpgeneric', 'pinned', `/sys/fs/bpf/${tag}-xdp`]);
    unpin(`/sys/fs/bpf/${tag}-xdp`);
    const problems = compare(start, snapshot());
    reported(problems, 'progs still loaded', `${id}=xdp/`);
    reported(problems, 'progs still loaded', 'no holder and no pin');
  } finally {
    sh('ip', ['link', 'del', iface], { allowFail: true });
    unpin(`/sys/fs/bpf/${tag}-xdp`);
  }
  assert.equal(await leaksSince(start), []);
});

/** Creates a BPF array map by syscall, prints its pid and the map's fd, sleeps (x86-64 __NR_bpf). */
const HOLDER = `
import ctypes, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
attr = bytearray(128)
struct.pack_into('IIII', attr, 0, 2, 4, 4, 1)
attr[28:28 + 13] = b'leak_foreign2'
buf = ctypes.create_string_buffer(bytes(attr), 128)
fd = libc.syscall(321, 0, buf, 128)
open(sys.argv[1], 'w').write(f'{os.getpid()} {fd}\\n')
time.sleep(60)
`;

test('an object held only by a process that is not ours (another run) is not reported', async () => {
  const start = snapshot();
  const out = `/tmp/${tag}-holder`;
  // Detached (setsid -f: not our descendant) and without our mark (env -i): another run's process.
  const starter = spawn('setsid', ['-f', 'env', '-i', 'python3', '-c', HOLDER, out], { stdio: 'ignore' });
  await once(starter, 'exit');
  let pid = 0;
  try {
    for (let i = 0; i < 100 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 50));
      try {
        const [p, fd] = readFileSync(out, 'utf8').trim().split(' ').map(Number);
        assert.ok(fd! >= 0, 'the holder created its map');
        pid = p!;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    assert.ok(pid > 0, 'the holder started');
    rmSync(out);
    const now = snapshot();
    const id = [...now.objects.values()].find((o) => o.name === 'leak_foreign2')?.id;
    assert.ok(id, 'the snapshot sees the map');
    assert.ok(now.holders.get(`map:${id}`)?.has(pid), 'held by the other process');
    const problems = compare(start, now);
    assert.not.ok(
      problems.some((p) => p.includes('leak_foreign2') || p.includes(`${pid} `)),
      `another process's map or the process itself reported as ours:\n  ${problems.join('\n  ')}`,
    );
  } finally {
    if (pid) process.kill(pid, 'SIGKILL');
    rmSync(out, { force: true });
  }
  const end = Date.now() + 3000;
  while (pid && existsSync(`/proc/${pid}`) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.equal(await leaksSince(start), []);
});

test('a snapshot that cannot run bpftool throws instead of seeing nothing', () => {
  const path = process.env.PATH;
  const code = process.exitCode;
  process.env.PATH = '/nonexistent';
  try {
    assert.throws(() => snapshot(), /cannot list BPF progs/);
    // uvu would swallow the throw in a before() hook: the run's exit code will say it too.
    assert.ok(hiddenFailures.recorded);
    assert.is(process.exitCode, code, 'not set before exit (in-process code may read it)');
  } finally {
    process.env.PATH = path;
    process.exitCode = code;
    hiddenFailures.clear();
  }
});

// A failing after-hook would abort the whole uvu run, so the file's own check is its last test.
test('nothing leaks', async () => {
  assert.equal(await leaksSince(before), []);
});

test.run();
