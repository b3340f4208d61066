/**
 * `bpfctl prog attach/detach` and `bpfctl link ls/detach` on the corpus, each attachment seen to
 * work for real: packets through a veth pair in test namespaces (XDP counting, XDP_TX answering
 * pings, tcx dropping a port), processes in a test cgroup (cgroup_skb bytes, a refused socket
 * type, sockops + sk_msg redirecting a TCP send), sk_skb parser+verdict moving bytes between
 * sockets, and tracepoints, raw tracepoints and kprobes counting syscalls. Then unload removes
 * the links it recorded and warns about a program attached through a link pinned elsewhere.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { createServer, type Socket, connect } from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, listLinks } from '../../loader/index.ts';
import { cgroup2Mount } from '../../src/deploy/paths.ts';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { createNetnsPair } from '../helpers/netns.ts';
import { objectFile, objectsDir, syscalls } from '../objects/build.ts';
import { cliJson as json, runCli as run } from '../helpers/cli.ts';

const root = `/sys/fs/bpf/bpfctl-test-${process.pid}`;
const cgroup = join(cgroup2Mount(), `bpfctl-objtest-${process.pid}`);
let before: Snapshot;

async function load(name: string, ...extra: string[]): Promise<string> {
  const dir = join(root, name);
  await json('load', objectFile(name), '--pin', dir, '--quiet', ...extra);
  return dir;
}

async function global<T = number>(mapPin: string, name: string): Promise<T> {
  return (await json<{ value: T }>('map', 'get', mapPin, name)).value;
}

/** Sends `n` UDP datagrams from namespace `ns` to ip:port (node's dgram, inside the namespace). */
function udp(ns: string, ip: string, port: number, n = 5): void {
  const script = `const s=require('dgram').createSocket('udp4');let i=0;const f=()=>{if(i++>=${n})return s.close();s.send('hello',${port},'${ip}',f)};f();`;
  execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: 'ignore' });
}

/** Runs `script` with node inside the test cgroup; returns its stdout. */
function inCgroup(script: string): string {
  return execFileSync('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec "$0" -e "$1"`, process.execPath, script], { encoding: 'utf8' });
}

test.before(async () => {
  await new Promise((r) => setTimeout(r, 500)); // let tsx settle its cache fds (see objects-maps)
  before = snapshot();
  mkdirSync(cgroup, { recursive: true });
});

test('XDP: attach to a veth in a namespace, count traffic, link ls shows it, detach stops it', async () => {
  const pair = createNetnsPair('xa');
  try {
    const dir = await load('xdp_stats_array');
    const prog = join(dir, 'progs/xdp_stats1_func');
    const res = await json<{ linkId: number; pin: string; mode: string; hook: string }>('prog', 'attach', prog, 'xdp', pair.ifB, '--netns', pair.nsB, '--mode', 'generic');
    assert.is(res.hook, 'xdp');
    assert.is(res.mode, 'generic');
    assert.is(res.pin, join(dir, `links/xdp_stats1_func_xdp_${pair.ifB}`));
    const links = await json<{ id: number; type: string; program: string; pins: string[] }[]>('link', 'ls');
    const mine = links.find((l) => l.id === res.linkId);
    assert.equal(mine && { type: mine.type, program: mine.program, pins: mine.pins }, { type: 'xdp', program: 'xdp_stats1_func', pins: [res.pin] });
    udp(pair.nsA, pair.ipB, 9999, 5);
    const stats = await json<{ value: { rx_packets: number } }>('map', 'get', join(dir, 'maps/xdp_stats_map'), '2');
    assert.ok(stats.value.rx_packets >= 5, `rx_packets ${stats.value.rx_packets}`);
    const again = await run('prog', 'attach', prog, 'xdp', pair.ifB, '--netns', pair.nsB);
    assert.is(again.code, 1);
    assert.match(again.stderr, /^bpfctl: .*already/);
    const det = await json<{ detached: { linkId: number; pins: string[] }[] }>('prog', 'detach', prog);
    assert.equal(det.detached, [{ linkId: res.linkId, type: 'xdp', pins: [res.pin] }]);
    assert.not.ok(existsSync(res.pin));
    // The count as of the detach: frames that arrived between the first reading and the detach
    // (the namespace's own IPv6 chatter, a late datagram) were rightly counted.
    const n = (await json<{ value: { rx_packets: number } }>('map', 'get', join(dir, 'maps/xdp_stats_map'), '2')).value.rx_packets;
    udp(pair.nsA, pair.ipB, 9999, 3);
    assert.is((await json<{ value: { rx_packets: number } }>('map', 'get', join(dir, 'maps/xdp_stats_map'), '2')).value.rx_packets, n, 'no longer counting');
    const none = await run('prog', 'detach', prog);
    assert.match(none.stderr, /is not attached through a link/);
    assert.is((await run('unload', dir)).code, 0);
  } finally {
    pair.destroy();
  }
});

test('XDP_TX: the program answers pings the kernel was told to ignore', async () => {
  const pair = createNetnsPair('xt');
  try {
    pair.exec(pair.nsB, 'sysctl', ['-q', '-w', 'net.ipv4.icmp_echo_ignore_all=1']);
    const dir = await load('xdp_icmp_tx');
    const py = `import socket,struct,sys
s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP);s.settimeout(1.0)
def cs(b):
  b=b+b'\\0'*(len(b)%2);t=sum(struct.unpack('!%dH'%(len(b)//2),b));t=(t>>16)+(t&0xffff);t+=t>>16;return ~t&0xffff
h=struct.pack('!BBHHH',8,0,0,77,1)+b'bpfctl';p=struct.pack('!BBHHH',8,0,cs(h),77,1)+b'bpfctl'
n=0
for i in range(3):
  s.sendto(p,('${pair.ipB}',0))
  try:
    d=s.recv(2048)
    if d[20]==0: n+=1
  except socket.timeout: pass
print(n)`;
    const ping = () => Number(execFileSync('ip', ['netns', 'exec', pair.nsA, 'python3', '-c', py], { encoding: 'utf8' }).trim());
    assert.is(ping(), 0, 'the kernel ignores pings');
    await json('prog', 'attach', join(dir, 'progs/xdp_icmp_echo'), 'xdp', pair.ifB, '--netns', pair.nsB, '--mode', 'generic');
    assert.is(ping(), 3, 'XDP_TX answers them');
    assert.is(await global(join(dir, 'maps/xdp_icmp_bss'), 'bounced'), 3);
    assert.is((await run('unload', dir)).code, 0);
    assert.equal(listLinks().filter((l) => l.type === 'xdp' && l.target === `ifindex:0`), []);
  } finally {
    pair.destroy();
  }
});

test('tc (tcx): count protocols and drop a UDP port on ingress; link detach by id', async () => {
  const pair = createNetnsPair('tc');
  try {
    const dir = await load('tc_classifier', '--set', 'drop_udp_port=7777');
    const res = await json<{ linkId: number; pin: string }>('prog', 'attach', join(dir, 'progs/tc_count'), 'tc', pair.ifB, '--netns', pair.nsB, '--direction', 'ingress');
    const links = await json<{ id: number; type: string; attachType: string }[]>('link', 'ls');
    assert.equal(
      links.filter((l) => l.id === res.linkId).map((l) => [l.type, l.attachType]),
      [['tcx', 'tcx_ingress']],
    );
    udp(pair.nsA, pair.ipB, 7777, 4);
    udp(pair.nsA, pair.ipB, 7778, 2);
    assert.is(await global(join(dir, 'maps/tc_class_bss'), 'dropped'), 4);
    const counts = await json<{ key: number; value: number }[]>('map', 'dump', join(dir, 'maps/proto_count'));
    assert.ok((counts.find((c) => c.key === 17)?.value ?? 0) >= 6, JSON.stringify(counts));
    const det = await json<{ linkId: number; removed: string[] }>('link', 'detach', String(res.linkId));
    assert.equal(det.removed, [res.pin]);
    // Egress: the same program on the sending side's device drops the packets before they leave.
    const eg = await json<{ linkId: number; pin: string }>('prog', 'attach', join(dir, 'progs/tc_count'), 'tc_egress', pair.ifA, '--netns', pair.nsA);
    assert.match(eg.pin, /tc_count_tc_egress_/);
    assert.equal(
      (await json<{ id: number; attachType: string }[]>('link', 'ls')).filter((l) => l.id === eg.linkId).map((l) => l.attachType),
      ['tcx_egress'],
    );
    udp(pair.nsA, pair.ipB, 7777, 3);
    assert.is(await global(join(dir, 'maps/tc_class_bss'), 'dropped'), 7);
    const un = await json<{ removed: string[]; warnings: string[] }>('unload', dir);
    assert.ok(un.removed.includes(eg.pin), 'unload detached the egress link it recorded');
    assert.equal(un.warnings, []);
    assert.equal(listLinks().filter((l) => l.id === eg.linkId), []);
  } finally {
    pair.destroy();
  }
});

test('cgroup_skb and cgroup/sock_create: bytes of processes in the cgroup, a refused socket type', async () => {
  const dir = await load('cgroup_skb_count');
  await json('prog', 'attach', join(dir, 'progs/count_egress'), 'cgroup', cgroup);
  await json('prog', 'attach', join(dir, 'progs/count_ingress'), 'cgroup', cgroup, '--attach-type', 'cgroup_inet_ingress');
  const udpLoop = `const s=require('dgram').createSocket('udp4');s.bind(0,'127.0.0.1',()=>{s.on('message',()=>{s.close()});s.send(Buffer.alloc(100),s.address().port,'127.0.0.1')})`;
  inCgroup(udpLoop);
  const bytes = await json<{ key: number; value: number }[]>('map', 'dump', join(dir, 'maps/bytes_by_dir'));
  assert.ok(bytes[0]!.value >= 128 && bytes[1]!.value >= 128, JSON.stringify(bytes));
  // Unload detaches the links it recorded: nothing of this object stays attached.
  const un = await json<{ removed: string[]; warnings: string[] }>('unload', dir);
  assert.is(un.removed.filter((p) => p.includes('/links/')).length, 2);
  assert.equal(un.warnings, []);

  const deny = await load('cgroup_sock_deny', '--set', 'deny_type=2');
  await json('prog', 'attach', join(deny, 'progs/sock_create_filter'), 'cgroup', cgroup);
  const out = inCgroup(`const s=require('dgram').createSocket('udp4');s.on('error',(e)=>console.log(e.code));s.bind(0,()=>{console.log('bound');s.close()})`);
  assert.match(out, /EPERM/);
  assert.is(await global(join(deny, 'maps/cgroup_s_bss'), 'refused'), 1);
  // cgroup/connect4: the attach type comes from the section (recorded at load), not a default.
  const c4 = await json<{ linkId: number }>('prog', 'attach', join(deny, 'progs/connect4_count'), 'cgroup', cgroup);
  assert.equal(
    listLinks().filter((l) => l.id === c4.linkId).map((l) => l.attachType),
    ['cgroup_inet4_connect'],
  );
  inCgroup(`const c=require('net').connect(9,'127.0.0.1');c.on('error',()=>{});c.on('close',()=>{})`);
  assert.ok((await global(join(deny, 'maps/cgroup_s_bss'), 'connects')) >= 1, 'connect() counted');
  assert.is((await run('unload', deny)).code, 0);
});

test('sockops + sk_msg: sockets of the cgroup go into the sockhash, sends are redirected', async () => {
  const dir = await load('sockhash_msg_redirect', '--set', 'service_port=47123');
  await json('prog', 'attach', join(dir, 'progs/bpf_sockops_cb'), 'sockops', cgroup);
  await json('prog', 'attach', join(dir, 'progs/bpf_redir'), 'sk_msg', join(dir, 'maps/sock_ops_map'));
  const script = `const net=require('net');const srv=net.createServer(c=>{c.on('data',d=>{console.log(String(d));c.end();srv.close()})});srv.listen(47123,'127.0.0.1',()=>{const c=net.connect(47123,'127.0.0.1',()=>setTimeout(()=>c.write('through sk_msg'),50));c.on('close',()=>{})})`;
  assert.is(inCgroup(script).trim(), 'through sk_msg');
  const bss = join(dir, 'maps/sockhash_bss');
  assert.is(await global(bss, 'inserted'), 2, 'both ends registered by sockops');
  assert.ok((await global(bss, 'redirected')) >= 1, 'the send was redirected by sk_msg');
  const links = await json<{ type: string; program: string }[]>('link', 'ls');
  assert.ok(links.some((l) => l.type === 'sockmap' && l.program === 'bpf_redir'), 'sk_msg as a pinned sockmap link');
  assert.is((await run('unload', dir)).code, 0);
});

test('sk_skb stream parser + verdict: bytes sent to one socket arrive at another', async () => {
  const dir = await load('sockmap_parser_verdict');
  const map = join(dir, 'maps/sock_map');
  await json('prog', 'attach', join(dir, 'progs/prog_stream_parser'), 'stream_parser', map);
  await json('prog', 'attach', join(dir, 'progs/prog_stream_verdict'), 'sk_skb', map);
  assert.is((await run('map', 'set', join(dir, 'maps/redir_to'), '0', '1')).code, 0);
  // prog ls: the full BTF name (the kernel keeps 15 characters), where it is attached, its pin, its owner, its sizes.
  const progs = await json<{ name: string; attached: string[]; pins: string[]; owner: string; xlated: number; jited: number }[]>('prog', 'ls');
  const verdict = progs.find((p) => p.pins.includes(join(dir, 'progs/prog_stream_verdict')));
  assert.ok(verdict, 'prog ls lists the pinned program');
  assert.is(verdict!.name, 'prog_stream_verdict');
  assert.is(verdict!.owner, 'load sockmap_parser_verdict');
  assert.match(verdict!.attached.join(), /^sockmap map:\d+ \(link \d+\)$/);
  assert.ok(verdict!.xlated > 0 && verdict!.jited > 0, 'xlated and jited sizes');
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const pair = async () => {
    const acc = once(server, 'connection') as Promise<[Socket]>;
    const c = connect(port, '127.0.0.1');
    await once(c, 'connect');
    return { c, p: (await acc)[0] };
  };
  const a = await pair();
  const b = await pair();
  const fd = (s: Socket) => (s as unknown as { _handle: { fd: number } })._handle.fd;
  const m = BpfMap.openPinned(map);
  try {
    m.updateFd(new Uint8Array([0, 0, 0, 0]), fd(a.p));
    m.updateFd(new Uint8Array([1, 0, 0, 0]), fd(b.p));
  } finally {
    m.close();
  }
  const got = once(b.p, 'data');
  a.c.write('redirected by sk_skb');
  assert.is(String((await got)[0]), 'redirected by sk_skb');
  assert.ok((await global(join(dir, 'maps/sockmap__bss'), 'verdicts')) >= 1);
  const closed = Promise.all([...[a.c, a.p, b.c, b.p].map((s) => once(s, 'close')), new Promise<void>((r) => server.close(() => r()))]);
  for (const s of [a.c, a.p, b.c, b.p]) s.destroy();
  await closed;
  assert.is((await run('unload', dir)).code, 0);
});

test('tracepoint, raw tracepoint, kprobe: attach from the section, count syscalls', async () => {
  const tp = await load('tracepoint_count');
  const res = await json<{ hook: string; target: string }>('prog', 'attach', join(tp, 'progs/count_getpgid'));
  assert.equal([res.hook, res.target], ['tracepoint', 'syscalls/sys_enter_getpgid']);
  for (let i = 0; i < 7; i++) syscalls.getpgid(0);
  assert.equal(await json('map', 'get', join(tp, 'maps/calls'), String(process.pid)), { key: process.pid, value: 7 });

  const raw = await load('raw_tp_count');
  assert.equal((await json<{ hook: string }>('prog', 'attach', join(raw, 'progs/count_sys_enter'))).hook, 'raw_tp');
  for (let i = 0; i < 4; i++) syscalls.getsid(0);
  assert.ok((await json<{ value: number }>('map', 'get', join(raw, 'maps/sys_counts'), '1')).value >= 4);

  const kp = await load('kprobe_count');
  if (existsSync('/sys/bus/event_source/devices/kprobe')) {
    assert.equal((await json<{ hook: string; target: string }>('prog', 'attach', join(kp, 'progs/kprobe_getuid'))).target, '__x64_sys_getuid');
    const k0 = await global(join(kp, 'maps/kprobe_c_bss'), 'kprobe_hits');
    for (let i = 0; i < 5; i++) syscalls.getuid();
    assert.ok((await global(join(kp, 'maps/kprobe_c_bss'), 'kprobe_hits')) - k0 >= 5);
    const bad = await run('prog', 'attach', join(kp, 'progs/kprobe_getuid'), 'kprobe', 'no_such_function_xyz');
    assert.match(bad.stderr, /^bpfctl: .*no_such_function_xyz/);
    assert.is(bad.stderr.trim().split('\n').length, 1);
  } else {
    // A kernel built without CONFIG_KPROBES (this VM's): one line saying so, nothing attached.
    const r = await run('prog', 'attach', join(kp, 'progs/kprobe_getuid'));
    assert.is(r.stderr, 'bpfctl: attach kprobe __x64_sys_getuid: this kernel has no kprobe PMU (built without CONFIG_KPROBES / CONFIG_KPROBE_EVENTS)\n');
    assert.not.ok(existsSync(join(kp, 'links')));
  }
  for (const d of [tp, raw, kp]) assert.is((await run('unload', d)).code, 0);
});

test('unload warns (with ids) about a program still attached through a link pinned elsewhere', async () => {
  const dir = await load('tracepoint_count');
  const elsewhere = join(root, 'elsewhere/link');
  const res = await json<{ linkId: number; progId: number }>('prog', 'attach', join(dir, 'progs/count_getpgid'), '--pin', elsewhere);
  const un = await run('unload', dir);
  assert.is(un.code, 0);
  assert.match(un.stderr, new RegExp(`warning: program 'count_getpgid' \\(id ${res.progId}\\) stays attached through link ${res.linkId} \\(perf_event tracepoint:sys_enter_getpgid\\): bpfctl link detach ${res.linkId}`));
  const ld = await run('link', 'detach', elsewhere);
  assert.is(ld.code, 0, ld.stderr);
  assert.not.ok(existsSync(elsewhere));
  rmdirSync(dirname(elsewhere)); // the directory --pin made for it
});

test('nothing leaks', async () => {
  rmSync(objectsDir, { recursive: true, force: true });
  assert.not.ok(readFileSync('/proc/self/cgroup', 'utf8').includes('bpfctl-objtest'));
  assert.equal(await leaksSince(before, { ownDirs: [root, cgroup] }), []);
  removeOwnDirs([root, cgroup]);
});

test.run();
