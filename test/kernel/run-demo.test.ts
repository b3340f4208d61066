/**
 * `bpfctl run --demo` as the README runs it: a child process that starts the hello-chain example,
 * prints each route's answer, cleans up and exits 0. And `bpfctl run` without --demo stays up
 * until SIGTERM, then removes everything.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pidAlive } from '../../src/runtime/pool/index.ts';
import { type Snapshot, snapshot } from '../helpers/leaks.ts';
import { CHAIN_PINNED, ownByKind, ownObjects, runLeaks } from './run-leaks.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const ID = `bpfctl-test-${process.pid}-demo`;
const env: NodeJS.ProcessEnv = {
  ...process.env,
  BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`,
  BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`,
  BPFCTL_RUN_DIR: `/tmp/${ID}-run`,
};
delete env.FORCE_COLOR;
let before: Snapshot;

function bpfctl(args: string[]) {
  const child = spawn(process.execPath, [join(repo, 'bin/bpfctl.js'), ...args], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (t: string) => {
    out.stdout += t;
  });
  child.stderr.setEncoding('utf8').on('data', (t: string) => {
    out.stderr += t;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out, exited };
}

/** Our pinned objects, collected while the child runs (it removes them before exiting). */
function watchOwn(exited: Promise<unknown>): Set<string> {
  const own = new Set<string>();
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const tick = () => {
    if (done) return;
    for (const o of ownObjects(env.BPFCTL_BPFFS!)) own.add(o);
    setTimeout(tick, 100);
  };
  tick();
  return own;
}

async function nothingLeft(own: Set<string>): Promise<void> {
  assert.not.ok(existsSync(join(env.BPFCTL_BPFFS!, 'hello-chain')), 'pins');
  assert.not.ok(existsSync(env.BPFCTL_CGROUP_PARENT!), 'cgroup');
  assert.not.ok(existsSync(`/dev/shm/bpfctl-pool-${ID}`), 'pool file');
  assert.equal(ownByKind(own), CHAIN_PINNED, `saw our pinned objects while running (${[...own].join(' ')})`);
  assert.equal(await runLeaks(before, own, [env.BPFCTL_BPFFS!, env.BPFCTL_RUN_DIR!]), []);
}

test.before(() => {
  before = snapshot();
});

test.after(() => {
  rmSync(env.BPFCTL_RUN_DIR!, { recursive: true, force: true });
  if (existsSync(env.BPFCTL_BPFFS!) && readdirSync(env.BPFCTL_BPFFS!).length === 0) rmdirSync(env.BPFCTL_BPFFS!);
});

test('run --demo prints every route with its answer, cleans up and exits 0', async () => {
  const { out, exited } = bpfctl(['run', 'examples/hello-chain/policy.ts', '--demo', '--pool', ID]);
  const own = watchOwn(exited);
  const code = await exited;
  assert.is(code, 0, out.stderr);
  for (const [route, answer] of [
    ['/hello', 'LTCFPB MORF OLLEH [/hello]'],
    ['/shout', 'HELLO FROM BPFCTL [/shout]'],
  ]) {
    assert.match(out.stdout, new RegExp(`POST http://127\\.0\\.0\\.1:\\d+${route}  "hello from bpfctl"  ->  200 ${JSON.stringify(answer).replace(/[[\]/]/g, '\\$&')}`));
  }
  assert.match(out.stderr, /stopped; removed the pins/);
  await nothingLeft(own);
});

test('run --json stays up and serves until SIGTERM, then removes everything', async () => {
  const { child, out, exited } = bpfctl(['run', 'examples/hello-chain/policy.ts', '--json', '--port', '0', '--pool', ID]);
  const own = watchOwn(exited);
  const end = Date.now() + 30_000;
  while (!out.stdout.trim().endsWith('}') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  const info = JSON.parse(out.stdout) as { url: string; routes: { name: string; url: string }[]; pid: number };
  assert.is(info.pid, child.pid);
  const answer = await new Promise<string>((resolve, reject) => {
    const req = http.request(info.routes[1]!.url, { method: 'POST', agent: false }, (res) => {
      let b = '';
      res.setEncoding('utf8').on('data', (t: string) => {
        b += t;
      });
      res.on('end', () => resolve(b));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end('still up');
  });
  assert.is(answer, 'STILL UP [/shout]');
  child.kill('SIGTERM');
  assert.is(await exited, 0, out.stderr);
  assert.not.ok(pidAlive(child.pid!));
  await nothingLeft(own);
});

test.run();
