import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readlinkSync, statSync } from 'node:fs';
import { BpfLink, BpfObject, LoaderError, listLinks, withNetns } from '../../loader/index.ts';
import { ifIndex, netnsPath } from '../../loader/netns.ts';
import { fixtureObject, u32 } from '../fixtures/fixture-path.ts';
import { leaksSince, removeOwnDirs, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair } from '../helpers/netns.ts';

const pinDir = `/sys/fs/bpf/bpfctl-test-${process.pid}`;
// Taken when this file's tests start, not at import: uvu imports every file before running any.
let before = snapshot();
test.before(() => {
  before = snapshot();
});
const cleanup: (() => void)[] = [];

function hits(obj: BpfObject): [bigint, bigint] {
  const m = obj.map('hits');
  return [Buffer.from(m.lookup(u32(0))!).readBigUInt64LE(0), Buffer.from(m.lookup(u32(1))!).readBigUInt64LE(0)];
}

function xdpOn(exec: (args: string[]) => string, ifname: string): string {
  // `ip -d link show`: the first line says "xdp" or "xdpgeneric", then "prog/xdp id N".
  const out = exec(['-d', 'link', 'show', 'dev', ifname]);
  const m = /prog\/xdp id (\d+)/.exec(out);
  return m ? `${/ xdpgeneric /.test(out.split('\n')[0]!) ? 'xdpgeneric' : 'xdp'}:${m[1]}` : 'none';
}

/** TCP connect from `ns` to ip:9 (nothing listens): a reset means reachable, a timeout dropped. */
function reachable(pair: ReturnType<typeof createNetnsPair>, ns: string, ip: string): boolean {
  const py = `import socket\ns=socket.socket()\ns.settimeout(1)\ntry:\n s.connect(('${ip}',9))\nexcept ConnectionRefusedError:\n print('refused')\nexcept OSError as e:\n print('timeout')`;
  const out = pair.exec(ns, 'python3', ['-c', py], { allowFail: true }).trim();
  // Anything else (python failing to run) is neither answer: "dropped" must not pass by default.
  if (out !== 'refused' && out !== 'timeout') throw new Error(`reachability probe from ${ns} to ${ip} printed ${JSON.stringify(out)}`);
  return out === 'refused';
}

test('withNetns switches the thread and always switches back', () => {
  const pair = createNetnsPair('w');
  // The thread's namespace by identity (its inode), and what the switch changes for the loader:
  // the interfaces if_nametoindex sees.
  const current = () => readlinkSync('/proc/thread-self/ns/net');
  const home = current();
  try {
    const nsA = `net:[${statSync(netnsPath(pair.nsA)).ino}]`;
    assert.is.not(nsA, home, 'the test namespace is not the one the test runs in');
    assert.is(ifIndex(pair.ifA), 0, `${pair.ifA} is not visible from here`);
    const inside = withNetns(pair.nsA, () => {
      const obj = BpfObject.open(fixtureObject('xdp-pass-drop'));
      obj.close();
      return { ns: current(), ifA: ifIndex(pair.ifA) };
    });
    assert.is(inside.ns, nsA, 'inside, the thread is in the namespace');
    assert.ok(inside.ifA > 0, `inside, ${pair.ifA} has an ifindex`);
    assert.is(current(), home, 'back after a normal return');
    assert.is(ifIndex(pair.ifA), 0, `${pair.ifA} is gone again after the return`);
    assert.throws(
      () =>
        withNetns(pair.nsA, () => {
          throw new Error('inside');
        }),
      /inside/,
    );
    assert.is(current(), home, 'back after the callback threw');
    assert.throws(() => withNetns(pair.nsA, () => Promise.resolve(1)), /must be synchronous/);
    assert.is(current(), home, 'back after refusing an async callback');
    assert.throws(() => withNetns('bpfctl-no-such-ns', () => 0), (e: unknown) => e instanceof LoaderError && e.code === 'E_NOENT');
    assert.is(current(), home, 'never left for a namespace that does not exist');
  } finally {
    pair.destroy();
  }
});

test('XDP on a veth in a namespace: attach, count, replace atomically, detach', () => {
  const pair = createNetnsPair('x');
  const obj = BpfObject.open(fixtureObject('xdp-pass-drop'));
  try {
    obj.load();
    const ipA = (args: string[]) => pair.exec(pair.nsA, 'ip', args);
    const ping = () => reachable(pair, pair.nsB, pair.ipA);
    assert.ok(ping(), 'the pair works before XDP');

    const pass = obj.program('xdp_pass');
    const drop = obj.program('xdp_drop');
    const att = pass.attachXdp(pair.ifA, { netns: pair.nsA, mode: 'native' });
    cleanup.push(() => att.close());
    assert.is(att.mode, 'native', 'veth supports native XDP');
    assert.is(xdpOn(ipA, pair.ifA), `xdp:${pass.id}`);
    const link = listLinks().find((l) => l.id === att.id);
    assert.ok(link, 'listLinks sees the XDP link');
    assert.is(link!.type, 'xdp');
    assert.is(link!.target, `ifindex:${att.ifindex}`);
    assert.is(link!.progId, pass.id);

    assert.ok(ping(), 'xdp_pass passes traffic');
    assert.ok(hits(obj)[0] > 0n, 'xdp_pass ran');

    // A second attach without replacing the link is refused, not silently swapped.
    assert.throws(
      () => drop.attachXdp(pair.ifA, { netns: pair.nsA }),
      (e: unknown) => e instanceof LoaderError && e.code === 'E_BUSY' && /update\(\)/.test(e.message),
    );

    att.update(drop);
    assert.is(xdpOn(ipA, pair.ifA), `xdp:${drop.id}`, 'the link now runs xdp_drop');
    assert.is(listLinks().find((l) => l.id === att.id)?.progId, drop.id, 'same link, new program');
    assert.not.ok(ping(), 'xdp_drop drops');
    assert.ok(hits(obj)[1] > 0n);

    att.detach();
    att.close();
    assert.is(xdpOn(ipA, pair.ifA), 'none', 'detached');
    assert.ok(ping(), 'traffic flows again');
  } finally {
    for (const f of cleanup.splice(0)) f();
    obj.close();
    pair.destroy();
  }
});

test('XDP generic and auto modes report the mode used; pinned links survive close', async () => {
  const pair = createNetnsPair('g');
  const obj = BpfObject.open(fixtureObject('xdp-pass-drop'));
  try {
    obj.load();
    const ipB = (args: string[]) => pair.exec(pair.nsB, 'ip', args);
    const gen = obj.program('xdp_pass').attachXdp(pair.ifB, { netns: pair.nsB, mode: 'generic' });
    cleanup.push(() => gen.close());
    assert.is(gen.mode, 'generic');
    assert.match(xdpOn(ipB, pair.ifB), /^xdpgeneric:/);
    gen.close();
    assert.is(xdpOn(ipB, pair.ifB), 'none', 'closing an unpinned link detaches');

    const auto = obj.program('xdp_pass').attachXdp(pair.ifB, { netns: pair.nsB });
    cleanup.push(() => auto.close());
    assert.is(auto.mode, 'native', 'auto picks the driver on veth');
    auto.pin(`${pinDir}/links/xdp`);
    auto.close();
    assert.match(xdpOn(ipB, pair.ifB), /^xdp:/, 'the pin keeps it attached');
    const again = BpfLink.openPinned(`${pinDir}/links/xdp`);
    cleanup.push(() => again.close());
    again.update(obj.program('xdp_drop'));
    assert.is(xdpOn(ipB, pair.ifB), `xdp:${obj.program('xdp_drop').id}`);
    again.detach();
    assert.is(xdpOn(ipB, pair.ifB), 'none');
    assert.throws(() => obj.program('xdp_pass').attachXdp('bpfctl-nope0', { netns: pair.nsB }), (e: unknown) => e instanceof LoaderError && e.code === 'E_NOENT');
  } finally {
    for (const f of cleanup.splice(0)) f();
    obj.close();
    pair.destroy();
  }
  // The pin remains (a detached link is still an object); remove it like the CLI's unload would.
  for (const p of [`${pinDir}/links/xdp`]) {
    try {
      (await import('node:fs')).unlinkSync(p);
    } catch {}
  }
});

test('replace: a legacy (netlink) XDP program is taken over by a link', () => {
  const pair = createNetnsPair('r');
  const obj = BpfObject.open(fixtureObject('xdp-pass-drop'));
  try {
    obj.load();
    const ipA = (args: string[]) => pair.exec(pair.nsA, 'ip', args);
    ipA(['link', 'set', 'dev', pair.ifA, 'xdpgeneric', 'obj', fixtureObject('maps'), 'sec', 'xdp']);
    assert.match(xdpOn(ipA, pair.ifA), /^xdpgeneric:/);
    const legacyId = xdpOn(ipA, pair.ifA).split(':')[1];
    assert.throws(() => obj.program('xdp_pass').attachXdp(pair.ifA, { netns: pair.nsA, mode: 'generic' }), (e: unknown) => e instanceof LoaderError && e.code === 'E_BUSY');
    const att = obj.program('xdp_pass').attachXdp(pair.ifA, { netns: pair.nsA, mode: 'generic', replace: true });
    cleanup.push(() => att.close());
    assert.is(xdpOn(ipA, pair.ifA), `xdpgeneric:${obj.program('xdp_pass').id}`);
    assert.is.not(legacyId, String(obj.program('xdp_pass').id));
    att.close();
    assert.is(xdpOn(ipA, pair.ifA), 'none');
  } finally {
    for (const f of cleanup.splice(0)) f();
    obj.close();
    pair.destroy();
  }
});

test('nothing leaked', async () => {
  assert.equal(await leaksSince(before, { ownDirs: [pinDir, `${pinDir}/links`] }), []);
  removeOwnDirs([pinDir, `${pinDir}/links`]);
});

test.run();
