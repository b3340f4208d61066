/**
 * The loader's fds are close-on-exec, as the kernel makes every fd bpf() returns: a process
 * started after a load (a supervisor's function instances, a user's child process) must not
 * inherit the object's programs and maps, or it keeps them alive after they were unloaded.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readlinkSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BpfObject } from '../../loader/index.ts';
import { fixtureObject } from '../fixtures/fixture-path.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';

let before: Snapshot;
test.before(() => {
  before = snapshot();
});

const bpfFds = (pid: number | 'self') =>
  readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      return /^anon_inode:bpf/.test(target) ? [`${fd} -> ${target}`] : [];
    } catch {
      return [];
    }
  });

test('a child started after a load holds none of its programs, maps or links', async () => {
  const obj = BpfObject.open(fixtureObject('sockops-count'));
  const map = BpfMap.create({ type: 'hash', name: 'cloexec_map', keySize: 4, valueSize: 4, maxEntries: 4 });
  try {
    obj.load();
    obj.program('count_established');
    assert.ok(bpfFds('self').length >= 3, `this process holds the object's fds: ${bpfFds('self')}`);
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await once(child, 'spawn');
    // Give exec a moment: /proc/PID/fd shows the fds the new program kept.
    await new Promise((r) => setTimeout(r, 100));
    const inherited = bpfFds(child.pid!);
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(inherited, [], 'no BPF fd crossed exec');
  } finally {
    map.close();
    obj.close();
  }
});

test('nothing leaks', async () => {
  assert.equal(await leaksSince(before), []);
});

test.run();
