/**
 * sockops registration (docs/internals.md trust model): a process inside the policy's cgroup that
 * connects to the hub from a port the supervisor reserved in reg_ports lands in `socks` and gets
 * its function's traffic; a process outside the cgroup, using a reserved port too, does not.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, rmdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BpfLink } from '../../loader/index.ts';
import { regPortEntry, sockKeyBytes } from '../../src/ir/chain-maps.ts';
import { loadPolicyFile } from '../../src/ir/policy.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { ChainRig, desc, until } from './chain-rig.ts';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const CGROUP = `/sys/fs/cgroup/unified/bpfctl-test-${process.pid}`;

// The "function instance": connects to the hub from a fixed local port, reports the descriptors
// it receives (req_id) on stdout, and stays connected until its stdin closes.
const CHILD = `
const net = require('node:net');
const [port, localPort] = process.argv.slice(1).map(Number);
const s = net.connect({ port, host: '127.0.0.1', localPort, localAddress: '127.0.0.1' }, () => console.log('connected'));
s.on('data', (b) => { for (let i = 0; i + 24 <= b.length; i += 24) console.log('got ' + b.readUInt32LE(i + 8)); });
s.on('error', (e) => console.log('error ' + e.code));
process.stdin.on('end', () => s.destroy());
process.stdin.resume();
`;

let before: Snapshot;
let rig: ChainRig;
let link: BpfLink;
const children: ChildProcess[] = [];

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** Starts the child, inside the cgroup or not; resolves once it is connected. */
async function startChild(localPort: number, inCgroup: boolean): Promise<{ child: ChildProcess; lines: string[] }> {
  const args = ['-e', CHILD, String(rig.hubPort), String(localPort)];
  const env = { ...process.env };
  delete env.FORCE_COLOR; // with NO_COLOR also set, node warns on stderr
  // The shell joins the cgroup, then becomes node: the process is in the cgroup before it connects (gotcha 7).
  const child = inCgroup
    ? spawn('sh', ['-c', `echo $$ > ${CGROUP}/cgroup.procs && exec "$0" "$@"`, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'], env })
    : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'], env });
  children.push(child);
  const lines: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (t: string) => lines.push(...t.split('\n').filter(Boolean)));
  await until(() => lines.includes('connected'), `child on port ${localPort} to connect`, 5000);
  return { child, lines };
}

test.before(async () => {
  before = snapshot();
  const ir = await loadPolicyFile(join(root, 'examples/hello-chain/policy.ts'));
  rig = await ChainRig.start(ir);
  mkdirSync(CGROUP);
  link = rig.obj.program('chain_sockops').attachCgroup(CGROUP);
});

test('a process in the cgroup on a reserved port registers; one outside does not', async () => {
  const inside = await freePort();
  const outside = await freePort();
  const unreserved = await freePort();
  const reg = rig.map('reg_ports');
  for (const e of [regPortEntry(inside, 1, 0), regPortEntry(outside, 1, 1)]) reg.update(e.key, e.value);

  const a = await startChild(inside, true);
  await startChild(outside, false);
  await startChild(unreserved, true);
  await until(() => rig.hubPeers.length === 3, 'the hub to accept all three');

  assert.ok(rig.socks.lookup(sockKeyBytes(1, 0)), 'in the cgroup, reserved port: registered');
  assert.is(rig.socks.lookup(sockKeyBytes(1, 1)), null, 'outside the cgroup: not registered although its port is reserved');
  let n = 0;
  for (let k = rig.socks.nextKey(null); k; k = rig.socks.nextKey(k)) n++;
  assert.is(n, 1, 'the unreserved port in the cgroup did not register either');

  // The registered child gets its function's traffic: a request on /shout (upper, stamp) from a
  // gateway registered through the loader goes to upper instance req_id % 2 = 0, the child.
  rig.setInstances(1, [0]);
  const gw = await rig.connect(0, 0);
  gw.sock.write(desc({ route: 1, req_id: 42, buf_len: 3 }));
  await until(() => a.lines.includes('got 42'), 'the child to receive the redirected descriptor');
  assert.equal(gw.errors, []);
});

test('nothing leaks', async () => {
  for (const c of children) {
    c.stdin!.end();
    c.kill();
    if (c.exitCode === null) await once(c, 'exit');
  }
  link.close();
  await rig.close();
  rmdirSync(CGROUP);
  assert.equal(leaksSince(before), []);
});

test.run();
