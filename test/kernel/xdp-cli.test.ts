/**
 * `bpfctl xdp status` and `bpfctl set add|del|ls`, in-process, against a section deployed on a
 * veth in a namespace with real traffic: counters shown are the ones the packets moved, and set
 * changes made through the CLI take effect on the running program.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Manifest, MANIFEST_VERSION, writeManifest } from '../../src/deploy/manifest.ts';
import { policyDir } from '../../src/deploy/paths.ts';
import { deployXdp, undeployXdp } from '../../src/deploy/xdp.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';
import { unpin, unpinAll } from '../../loader/index.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair, type NetnsPair } from '../helpers/netns.ts';

const test = suite('xdp cli');
const root = `/sys/fs/bpf/bpfctl-test-${process.pid}-xdpcli`;
const NAME = 'xdpcli';
let before: Snapshot;
let net: NetnsPair;
const savedRoot = process.env.BPFCTL_BPFFS;

const SENDER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])): s.sendto(b'x' * 32, (sys.argv[1], int(sys.argv[2])))
`;
import { runCli as cli } from '../helpers/cli.ts';
const send = (port: number, n: number) => net.exec(net.nsA, 'python3', ['-c', SENDER, net.ipB, String(port), String(n)]);

interface StatusJson {
  policy: string;
  interface: string;
  mode: string;
  progId: number;
  rules: { name: string; packets: number; bytes: number; action: string }[];
  sets: { name: string; size: number }[];
}

async function status(): Promise<StatusJson> {
  const r = await cli('xdp', 'status', NAME, '--json');
  assert.is(r.code, 0, r.stderr);
  const all = JSON.parse(r.stdout) as StatusJson[];
  assert.is(all.length, 1);
  return all[0]!;
}

const rule = (s: StatusJson, name: string) => s.rules.find((r) => r.name === name)!;

test.before(() => {
  before = snapshot();
  process.env.BPFCTL_BPFFS = root;
  net = createNetnsPair('c');
  const ir = lowerPolicy({
    name: NAME,
    functions: { f: { instances: 1, handler: './f.ts' } },
    routes: { '/r': ['f'] },
    pool: { bufferSize: 4096, bufferCount: 16 },
    xdp: [
      {
        interface: net.ifB,
        default: 'drop',
        sets: { blocked: { type: 'ipv4-prefix' }, open: { type: 'port', elements: [7001] } },
        rules: [
          { name: 'blocked', match: { src: { set: 'blocked' } }, action: 'drop' },
          { name: 'open', match: { proto: 'udp', dport: { set: 'open' } }, action: 'pass' },
          { name: 'arp', match: { ethType: 'arp' }, action: 'pass' },
        ],
      },
    ],
  });
  const dir = policyDir(NAME);
  const d = deployXdp(ir, 0, dir, { netns: net.nsB });
  // What `bpfctl load` writes, minus the chain: this suite deploys only the XDP section.
  const manifest = {
    manifestVersion: MANIFEST_VERSION,
    policy: NAME,
    schemaHash: ir.hash,
    layoutHash: 'xdp-only',
    createdAt: new Date().toISOString(),
    policyFile: null,
    cgroup: null,
    pins: { progs: [], maps: [], links: [] },
    xdp: [{ interface: d.interface, mode: d.mode, dir: d.dir }],
    ir,
  } as Manifest;
  writeManifest(dir, manifest);
});

function cleanup(): void {
  try {
    undeployXdp(policyDir(NAME));
    unpinAll(root);
  } finally {
    net?.destroy();
    rmSync(root, { recursive: true, force: true });
    if (savedRoot === undefined) delete process.env.BPFCTL_BPFFS;
    else process.env.BPFCTL_BPFFS = savedRoot;
  }
}

test.after(cleanup);

test('xdp status shows the attachment and every rule with live counters', async () => {
  send(7001, 5);
  send(7009, 3);
  const s = await status();
  assert.is(s.policy, NAME);
  assert.is(s.interface, net.ifB);
  assert.is(s.mode, 'native');
  assert.ok(s.progId > 0);
  assert.equal(
    s.rules.map((r) => r.name),
    ['blocked', 'open', 'arp', '(default)'],
  );
  assert.is(rule(s, 'open').packets, 5);
  assert.is(rule(s, 'open').bytes, 5 * 74);
  assert.ok(rule(s, '(default)').packets >= 3);
  assert.equal(
    s.sets.map((x) => [x.name, x.size]),
    [
      ['blocked', 0],
      ['open', 1],
    ],
  );
  const human = await cli('xdp', 'status');
  assert.is(human.code, 0, human.stderr);
  for (const text of [`XDP on ${net.ifB}`, 'ip4 src @blocked', 'udp dport @open', '(default)', 'malformed: 0 packets']) assert.ok(human.stdout.includes(text), `${text} in\n${human.stdout}`);
});

test('set add/ls/del change the running program', async () => {
  const add = await cli('set', 'add', NAME, 'blocked', `${net.ipA}/32`, '203.0.113.0/24', '--json');
  assert.is(add.code, 0, add.stderr);
  assert.equal(JSON.parse(add.stdout), [{ interface: net.ifB, set: 'blocked', type: 'ipv4-prefix', added: 2, size: 2 }]);
  const again = await cli('set', 'add', NAME, 'blocked', '203.0.113.0/24', '--json');
  assert.is(JSON.parse(again.stdout)[0].added, 0, 'adding a present element changes nothing');
  send(7001, 4);
  let s = await status();
  assert.is(rule(s, 'blocked').packets, 4);
  assert.is(rule(s, 'open').packets, 5);
  const ls = await cli('set', 'ls', NAME, 'blocked', '--json');
  assert.equal(JSON.parse(ls.stdout)[0].elements, [`${net.ipA}/32`, '203.0.113.0/24']);
  const lsHuman = await cli('set', 'ls', NAME, 'blocked');
  assert.ok(lsHuman.stdout.includes('203.0.113.0/24'));
  const del = await cli('set', 'del', NAME, 'blocked', `${net.ipA}/32`, '--json');
  assert.is(JSON.parse(del.stdout)[0].removed, 1);
  send(7001, 2);
  s = await status();
  assert.is(rule(s, 'open').packets, 7);
  const ports = await cli('set', 'add', NAME, 'open', '7002,7003');
  assert.is(ports.code, 0, ports.stderr);
  send(7003, 1);
  assert.is(rule(await status(), 'open').packets, 8);
});

test('set errors name the problem', async () => {
  const unknown = await cli('set', 'add', NAME, 'nope', '1.2.3.4');
  assert.is(unknown.code, 1);
  assert.ok(unknown.stderr.includes("no set 'nope' (sets: blocked, open)"), unknown.stderr);
  const bad = await cli('set', 'add', NAME, 'blocked', '10.0.0.1/8');
  assert.is(bad.code, 1);
  assert.ok(bad.stderr.includes('did you mean 10.0.0.0/8'), bad.stderr);
  const wrong = await cli('set', 'add', NAME, 'open', '70000', '--json');
  assert.is(wrong.code, 1);
  assert.is(JSON.parse(wrong.stderr).code, 'E_SET_ELEMENT');
  const notLoaded = await cli('set', 'ls', 'nosuchpolicy', 'x');
  assert.is(notLoaded.code, 1);
  assert.ok(notLoaded.stderr.includes('not loaded'), notLoaded.stderr);
});

test('leaves nothing behind', async () => {
  // Undeploy is what is under test; the namespaces and the pin root are this file's fixtures,
  // removed only after the check so that nothing they held is freed with them first.
  undeployXdp(policyDir(NAME));
  // The manifest is this file's own stand-in for what `bpfctl load` writes: not undeploy's.
  unpin(join(policyDir(NAME), 'manifest'));
  const leaks = await leaksSince(before, { ownDirs: [root, policyDir(NAME)], fixtures: [net.nsA, net.nsB] });
  assert.equal(leaks, [], leaks.join('\n'));
  cleanup();
  const after = await leaksSince(before);
  assert.equal(after, [], after.join('\n'));
});

test.run();
