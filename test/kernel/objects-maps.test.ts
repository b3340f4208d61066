/**
 * Every map kind of the corpus through `bpfctl map`: fd-valued maps (prog array, map-in-map,
 * devmap, cpumap, sockmap, xskmap) dumped by key with what the kernel returns (ids, ifindexes,
 * cookies) and filled by `id N`, `pinned PATH` or `name X`; per-CPU values with get and set
 * symmetric (sum, --cpu N, --per-cpu, --all-cpus); an LPM trie round trip of what dump prints.
 */
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer, type Socket, connect } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BpfProgram } from '../../loader/index.ts';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { objectFile, objectsDir } from '../objects/build.ts';
import { cliJson as json, runCli as run } from '../helpers/cli.ts';

const root = `/sys/fs/bpf/bpfctl-test-${process.pid}`;
let before: Snapshot;
const XDP_DROP = 1;
const XDP_PASS = 2;

async function load(name: string): Promise<string> {
  const dir = join(root, name);
  await json('load', objectFile(name), '--pin', dir, '--quiet');
  return dir;
}

function idOf(pin: string, kind: 'prog' | 'map'): number {
  const o = kind === 'prog' ? BpfProgram.openPinned(pin) : BpfMap.openPinned(pin);
  try {
    return o.id;
  } finally {
    o.close();
  }
}

function testRun(pin: string, times = 1): number {
  const p = BpfProgram.openPinned(pin);
  try {
    return p.testRun(new Uint8Array(64), { repeat: times }).retval;
  } finally {
    p.close();
  }
}

test.before(async () => {
  // tsx finishes writing its transform cache (and holds /tmp/tsx-0 open) a moment after the
  // imports: let it settle so the fd count compares our own fds only.
  await new Promise((r) => setTimeout(r, 500));
  before = snapshot();
});

test('prog array: set by pinned PATH, id N and name X; dump shows program ids; tail calls follow', async () => {
  const dir = await load('xdp_tailcall');
  const table = join(dir, 'maps/jmp_table');
  assert.equal(await json('map', 'dump', table), [], 'empty slots are not entries');
  const drop = idOf(join(dir, 'progs/xdp_slot_drop'), 'prog');
  const pass = idOf(join(dir, 'progs/xdp_slot_pass'), 'prog');
  assert.equal(await json('map', 'set', table, '0', 'pinned', join(dir, 'progs/xdp_slot_drop')), { key: 0, value: { progId: drop } });
  assert.is((await run('map', 'set', table, '1', 'id', String(pass))).code, 0);
  assert.is((await run('map', 'set', table, '2', 'name', 'xdp_slot_pass')).code, 0);
  assert.equal(await json('map', 'dump', table), [
    { key: 0, value: { progId: drop } },
    { key: 1, value: { progId: pass } },
    { key: 2, value: { progId: pass } },
  ]);
  assert.equal(await json('map', 'get', table, '1'), { key: 1, value: { progId: pass } });
  // The entry program jumps to jmp_table[slot]: slot 0 drops, slot 1 passes.
  const entry = join(dir, 'progs/xdp_entry');
  assert.is(testRun(entry), XDP_DROP);
  assert.is((await run('map', 'set', join(dir, 'maps/xdp_tail_bss'), 'slot', '1')).code, 0);
  assert.is(testRun(entry, 3), XDP_PASS);
  assert.equal(await json('map', 'get', join(dir, 'maps/xdp_tail_bss'), 'hits'), { name: 'hits', value: [3, 1, 0, 0] });
  assert.is((await run('map', 'del', table, '1')).code, 0);
  assert.is(testRun(entry), XDP_PASS, 'an empty slot falls through');
  assert.equal((await json<{ value: number }>('map', 'get', join(dir, 'maps/xdp_tail_bss'), 'fallthrough')).value, 1);

  const bad = await run('map', 'set', table, '3', 'pinned', join(dir, 'maps/jmp_table'));
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /holds a map, not a prog/);
  const unknown = await run('map', 'set', table, '3', 'name', 'no_such_prog');
  assert.match(unknown.stderr, /^bpfctl: no program named 'no_such_prog' is loaded\n/);
  const junk = await run('map', 'set', table, '3', 'hello');
  assert.match(junk.stderr, /expected a program as id N, pinned PATH or name X, got 'hello'/);
  assert.is((await run('unload', dir)).code, 0);
});

test('array of maps: dump shows inner map ids; set an inner map by pin; the program follows it', async () => {
  const dir = await load('map_in_map');
  const outer = join(dir, 'maps/outer');
  const a = idOf(join(dir, 'maps/inner_a'), 'map');
  const b = idOf(join(dir, 'maps/inner_b'), 'map');
  assert.equal(await json('map', 'dump', outer), [{ key: 0, value: { mapId: a } }]);
  assert.equal(await json('map', 'set', outer, '1', 'pinned', join(dir, 'maps/inner_b')), { key: 1, value: { mapId: b } });
  assert.is((await run('map', 'set', join(dir, 'maps/map_in_m_bss'), 'use_slot', '1')).code, 0);
  testRun(join(dir, 'progs/xdp_inner_count'), 4);
  assert.equal(await json('map', 'dump', join(dir, 'maps/inner_b')), [{ key: 0, value: 4 }]);
  assert.equal(await json('map', 'dump', join(dir, 'maps/inner_a')), [{ key: 0, value: 0 }]);
  assert.is((await run('unload', dir)).code, 0);
});

test('devmap and cpumap: interfaces by name, queue sizes; xskmap keys without values', async () => {
  const dir = await load('xdp_redirect_map');
  const tx = join(dir, 'maps/tx_port');
  assert.equal(await json('map', 'set', tx, '0', 'lo'), { key: 0, value: { ifindex: 1 } });
  assert.equal(await json('map', 'dump', tx), [{ key: 0, value: { ifindex: 1 } }]);
  const bad = await run('map', 'set', tx, '1', 'nosuchif0');
  assert.match(bad.stderr, /no network interface 'nosuchif0'/);
  assert.is((await run('unload', dir)).code, 0);

  const xd = await load('xsk_cpumap');
  assert.equal(await json('map', 'set', join(xd, 'maps/cpu_map'), '0', '2048'), { key: 0, value: { qsize: 2048, progId: 0 } });
  assert.equal(await json('map', 'dump', join(xd, 'maps/cpu_map')), [{ key: 0, value: { qsize: 2048, progId: 0 } }]);
  // The kernel lists an xskmap's keys but never says from user space what a slot holds.
  const xsk = await json<{ key: number; value: null }[]>('map', 'dump', join(xd, 'maps/xsks_map'));
  assert.equal(
    xsk.map((r) => r.key),
    [0, 1, 2, 3],
  );
  assert.ok(xsk.every((r) => r.value === null));
  const set = await run('map', 'set', join(xd, 'maps/xsks_map'), '0', 'id', '1');
  assert.match(set.stderr, /holds sockets: only the process that owns a socket can insert it/);
  assert.is((await run('unload', xd)).code, 0);
});

test('sockmap: dump lists keys and socket cookies (empty is empty, not an error)', async () => {
  const dir = await load('sockmap_parser_verdict');
  const pin = join(dir, 'maps/sock_map');
  assert.equal(await json('map', 'dump', pin), []);
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  await once(client, 'connect');
  const [peer] = await accepted;
  const m = BpfMap.openPinned(pin);
  try {
    m.updateFd(new Uint8Array([2, 0, 0, 0]), (client as unknown as { _handle: { fd: number } })._handle.fd);
  } finally {
    m.close();
  }
  const rows = await json<{ key: number; value: { cookie: number } }[]>('map', 'dump', pin);
  assert.is(rows.length, 1);
  assert.is(rows[0]!.key, 2);
  assert.ok(rows[0]!.value.cookie > 0, 'socket cookie');
  // From the CLI: a socket of a process, by pid and fd (here this one's other end).
  const peerFd = (peer as unknown as { _handle: { fd: number } })._handle.fd;
  const set = await json<{ key: number; value: { cookie: number } }>('map', 'set', pin, '3', `sock ${process.pid}:${peerFd}`);
  assert.ok(set.value.cookie > 0 && set.value.cookie !== rows[0]!.value.cookie, 'another socket');
  assert.equal(
    (await json<{ key: number }[]>('map', 'dump', pin)).map((r) => r.key),
    [2, 3],
  );
  const noFd = await run('map', 'set', pin, '1', `sock ${process.pid}:65000`);
  assert.is(noFd.stderr, `bpfctl: take fd 65000 of process ${process.pid}: ENOENT: process ${process.pid} has no fd 65000\n`);
  const noSock = await run('map', 'set', pin, '1', 'id', '3');
  assert.match(noSock.stderr, /holds sockets: give one as sock PID:FD/);
  const closed = Promise.all([once(client, 'close'), once(peer, 'close'), new Promise((r) => server.close(r))]);
  client.destroy();
  peer.destroy();
  await closed;
  assert.is((await run('unload', dir)).code, 0);
  const sh = await load('sockhash_msg_redirect');
  assert.equal(await json('map', 'dump', join(sh, 'maps/sock_ops_map')), []);
  assert.is((await run('unload', sh)).code, 0);
});

test('per-CPU: get shows what set wrote (the sum), --cpu N one CPU, --per-cpu every CPU, --all-cpus', async () => {
  const dir = await load('xdp_stats_percpu');
  const pin = join(dir, 'maps/xdp_stats_map');
  const cpus = BpfMap.openPinned(pin);
  const n = cpus.possibleCpus;
  cpus.close();
  testRun(join(dir, 'progs/xdp_pass_func'), 10);
  assert.equal(await json('map', 'get', pin, String(XDP_PASS)), { key: 2, value: { rx_packets: 10, rx_bytes: 640 } });
  // set then get: the same value back, whatever the CPU count.
  assert.is((await run('map', 'set', pin, '3', '{"rx_packets":5,"rx_bytes":100}')).code, 0);
  assert.equal(await json('map', 'get', pin, '3'), { key: 3, value: { rx_packets: 5, rx_bytes: 100 } });
  const per = await json<{ value: { rx_packets: number }[] }>('map', 'get', pin, '3', '--per-cpu');
  assert.is(per.value.length, n);
  if (n > 1) {
    assert.is((await run('map', 'set', pin, '3', '{"rx_packets":7,"rx_bytes":1}', '--cpu', '1')).code, 0);
    assert.equal(await json('map', 'get', pin, '3', '--cpu', '1'), { key: 3, value: { rx_packets: 7, rx_bytes: 1 } });
    assert.equal(await json('map', 'get', pin, '3'), { key: 3, value: { rx_packets: 12, rx_bytes: 101 } });
  }
  // --per-cpu both ways: the array get prints is what set takes.
  const arr = JSON.stringify(Array.from({ length: n }, (_, i) => ({ rx_packets: i + 1, rx_bytes: 0 })));
  assert.is((await run('map', 'set', pin, '4', arr, '--per-cpu')).code, 0);
  assert.equal((await json<{ value: unknown }>('map', 'get', pin, '4', '--per-cpu')).value, JSON.parse(arr));
  assert.is((await run('map', 'set', pin, '4', '{"rx_packets":1,"rx_bytes":2}', '--all-cpus')).code, 0);
  assert.equal(await json('map', 'get', pin, '4'), { key: 4, value: { rx_packets: n, rx_bytes: 2 * n } });
  const bad = await run('map', 'get', pin, '4', '--cpu', String(n + 3));
  assert.match(bad.stderr, new RegExp(`--cpu ${n + 3}: this machine has CPUs 0\\.\\.${n - 1}`));
  const dump = await json<{ key: number }[]>('map', 'dump', pin, '--cpu', '0');
  assert.is(dump.length, 5);
  assert.is((await run('unload', dir)).code, 0);
});

test('LPM trie and hash: every row dump prints reads back with get, and the program matches it', async () => {
  const dir = await load('lpm_blocklist');
  const pin = join(dir, 'maps/blocklist');
  assert.is((await run('map', 'set', pin, '{"prefixlen":24,"addr":"0x000012c6"}', '0')).code, 0);
  const rows = await json<{ key: unknown; value: number }[]>('map', 'dump', pin);
  assert.equal(rows, [{ key: { prefixlen: 24, addr: 0x12c6 }, value: 0 }]);
  for (const r of rows) assert.equal(await json('map', 'get', pin, JSON.stringify(r.key)), r);
  const raw = await json<{ key: string; value: string }[]>('map', 'dump', pin, '--raw');
  assert.equal(raw, [{ key: '18000000c6120000', value: '0000000000000000' }]);
  assert.equal(await json('map', 'get', pin, raw[0]!.key, '--raw'), raw[0]);
  // 198.18.0.x (0xc6 0x12 0x00 ...) from an IPv4 frame is dropped and counted.
  const frame = new Uint8Array(64);
  frame.set([0x08, 0x00], 12);
  frame.set([0x45, 0, 0, 50, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 7, 10, 0, 0, 1], 14);
  const p = BpfProgram.openPinned(join(dir, 'progs/xdp_lpm_drop'));
  try {
    assert.is(p.testRun(frame).retval, XDP_DROP);
  } finally {
    p.close();
  }
  assert.equal((await json<{ value: number }[]>('map', 'dump', pin))[0]!.value, 1);
  assert.is((await run('unload', dir)).code, 0);
});

test('maps and programs by POLICY/NAME (and obj/OBJECT/NAME for a load without --pin)', async () => {
  const saved = process.env.BPFCTL_BPFFS;
  process.env.BPFCTL_BPFFS = join(root, 'bpfctl');
  try {
    const load = await json<{ dir: string }>('load', objectFile('xdp_stats_array'), '--quiet');
    assert.is(load.dir, join(root, 'bpfctl/obj/xdp_stats_array'));
    assert.is((await json<unknown[]>('map', 'dump', 'obj/xdp_stats_array/xdp_stats_map')).length, 5);
    const m = BpfMap.create({ type: 'array', name: 'routes_like', keySize: 4, valueSize: 4, maxEntries: 2 });
    m.pin(join(root, 'bpfctl/mypolicy/maps/routes'));
    m.close();
    assert.equal(await json('map', 'get', 'mypolicy/routes', '1'), { key: 1, value: '00000000' });
    const p = await json<{ progId: number; pin: string }>('prog', 'attach', 'obj/xdp_stats_array/xdp_stats1_func', 'xdp', 'lo', '--mode', 'generic');
    assert.ok(p.progId > 0);
    assert.is(p.pin, join(root, 'bpfctl/links/xdp_stats1_func_xdp_lo'), 'no load manifest is found through a POLICY/NAME ref: the pin root');
    assert.is((await run('link', 'detach', p.pin)).code, 0);
    assert.is((await run('unload', load.dir)).code, 0);
    rmSync(join(root, 'bpfctl'), { recursive: true });
  } finally {
    if (saved === undefined) delete process.env.BPFCTL_BPFFS;
    else process.env.BPFCTL_BPFFS = saved;
  }
});

test('nothing leaks', async () => {
  rmSync(objectsDir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [root] }), []);
  removeOwnDirs([root]);
});

test.run();
