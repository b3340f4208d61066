/**
 * Third-party-style objects through `bpfctl load`: global data (.bss/.data/.rodata) pinned under
 * bpftool's names, `--set` for const volatile config, globals read and written by name after
 * load, LIBBPF_PIN_BY_NAME under --pin, libbpf's own reason for objects it refuses, and raw
 * hex that round-trips what `map dump` prints.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BpfObject, BpfProgram, LoaderError, listMaps, listPrograms } from '../../loader/index.ts';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { objectFile, objectsDir, syscalls } from '../objects/build.ts';
import { cliJson as json, runCli as run } from '../helpers/cli.ts';

const root = `/sys/fs/bpf/bpfctl-test-${process.pid}`;
let before: Snapshot;

test.before(async () => {
  // tsx finishes writing its transform cache (and holds /tmp/tsx-0 open) a moment after the
  // imports: let it settle so the fd count compares our own fds only.
  await new Promise((r) => setTimeout(r, 500));
  before = snapshot();
});

test('global data: bpftool pin names, --set before load, read and written by name after', async () => {
  const dir = join(root, 'boot');
  const obj = objectFile('bootstrap_exec');
  const load = await json<{ pins: { kind: string; name: string; pin: string }[] }>('load', obj, '--pin', dir, '--set', `target_pid=${process.pid}`, '--set', 'max_events=2', '--quiet');
  const maps = load.pins.filter((p) => p.kind === 'map').map((p) => p.pin.slice(dir.length + 1)).sort();
  // libbpf names them <object prefix>.bss ...; bpffs refuses dots, so they pin as bpftool pins them.
  assert.equal(maps, ['maps/bootstra_bss', 'maps/bootstra_data', 'maps/bootstra_rodata', 'maps/rb']);
  for (const p of load.pins) assert.ok(existsSync(p.pin), p.pin);

  // .rodata decodes by variable, with the values --set gave it before load.
  const rodata = await json<{ key: number; value: Record<string, unknown> }[]>('map', 'dump', join(dir, 'maps/bootstra_rodata'));
  assert.equal(rodata, [{ key: 0, value: { target_pid: process.pid, max_events: 2, greeting: 'bootstrap' } }]);
  assert.equal(await json('map', 'get', join(dir, 'maps/bootstra_rodata'), 'max_events'), { name: 'max_events', value: 2 });

  // Attach the tracepoint through the loader and make it fire: the .bss counters move, capped by max_events.
  const prog = BpfProgram.openPinned(join(dir, 'progs/handle_getppid'));
  const link = prog.attachTracepoint('syscalls', 'sys_enter_getppid');
  try {
    // A child's calls do not count (target_pid is us); ours do, up to max_events.
    execFileSync(process.execPath, ['-e', 'process.ppid'], { stdio: 'ignore' });
    for (let i = 0; i < 5; i++) syscalls.getppid();
  } finally {
    link.close();
    prog.close();
  }
  const bss = await json<{ key: number; value: { events_seen: number; events_dropped: number } }[]>('map', 'dump', join(dir, 'maps/bootstra_bss'));
  assert.is(bss[0]!.value.events_seen, 2, 'max_events=2 caps the count');
  assert.equal(await json('map', 'get', join(dir, 'maps/bootstra_bss'), 'last_pid'), { name: 'last_pid', value: process.pid });
  assert.equal(await json('map', 'get', join(dir, 'maps/bootstra_data'), 'seq'), { name: 'seq', value: 3 });

  // Written by name after load (through the mmaped map), read back the same way.
  assert.is((await run('map', 'set', join(dir, 'maps/bootstra_bss'), 'events_seen', '0')).code, 0);
  assert.equal(await json('map', 'get', join(dir, 'maps/bootstra_bss'), 'events_seen'), { name: 'events_seen', value: 0 });
  const frozen = await run('map', 'set', join(dir, 'maps/bootstra_rodata'), 'max_events', '9');
  assert.is(frozen.code, 1);
  assert.match(frozen.stderr, /^bpfctl: 'max_events' is in \.rodata, which the kernel froze at load: set it before load/);
  assert.is(frozen.stderr.trim().split('\n').length, 1, 'one line');
  const unknown = await run('map', 'get', join(dir, 'maps/bootstra_bss'), 'nope');
  assert.match(unknown.stderr, /has no variable 'nope' \(variables: last_pid, events_seen, events_dropped\)/);

  const bad = await run('load', obj, '--pin', join(root, 'boot-bad'), '--set', 'max_events=-1');
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /--set max_events/);
  const none = await run('load', obj, '--pin', join(root, 'boot-bad'), '--set', 'nope=1');
  assert.match(none.stderr, /has no global variable 'nope' \(globals: target_pid, max_events, greeting, last_pid, events_seen, events_dropped, seq\)/);
  assert.not.ok(existsSync(join(root, 'boot-bad')), 'a refused --set leaves nothing');

  const un = await json<{ removed: string[]; warnings: string[] }>('unload', dir);
  assert.is(un.removed.length, load.pins.length);
  assert.equal(un.warnings, []);
  assert.not.ok(existsSync(dir));
});

test('BpfObject: globals in TypeScript, before and after load', () => {
  const obj = BpfObject.open(objectFile('bootstrap_exec'));
  try {
    assert.equal(
      obj.globals.map((g) => [g.name, g.section, g.readonly]),
      [
        ['target_pid', '.rodata', true],
        ['max_events', '.rodata', true],
        ['greeting', '.rodata', true],
        // `= 0` is zero-initialised: the compiler puts it in .bss.
        ['last_pid', '.bss', false],
        ['events_seen', '.bss', false],
        ['events_dropped', '.bss', false],
        ['seq', '.data', false],
      ],
    );
    obj.setGlobal('max_events', 100n);
    obj.setGlobal('greeting', 'hi');
    assert.throws(() => obj.setGlobal('target_pid', -1), (e: unknown) => e instanceof LoaderError && e.code === 'E_INVAL' && /outside 0\.\.4294967295/.test(e.message));
    assert.throws(() => obj.setGlobal('greeting', 'much too long for it'), /is 20 bytes/);
    obj.load();
    assert.is(obj.global('max_events'), 100n);
    assert.is(obj.global('greeting'), 'hi');
    assert.is(obj.global('seq'), 1);
    obj.setGlobal('seq', 41);
    assert.is(obj.global('seq'), 41);
    // The same bytes through the map the kernel sees.
    assert.is(Buffer.from(obj.map('.data').lookup(new Uint8Array(4))!).readUInt32LE(0), 41);
    assert.throws(() => obj.setGlobal('max_events', 1), (e: unknown) => e instanceof LoaderError && e.code === 'E_RDONLY');
  } finally {
    obj.close();
  }
});

test('LIBBPF_PIN_BY_NAME maps are pinned under --pin, shared by a second object, removed with the last', async () => {
  const dir = join(root, 'byname');
  const first = await json<{ pins: { name: string; pin: string; by: string; id: number; reused?: boolean }[] }>('load', objectFile('pin_by_name'), '--pin', dir, '--quiet');
  const shared = first.pins.find((p) => p.name === 'shared_counts')!;
  assert.is(shared.pin, join(dir, 'maps/shared_counts'));
  assert.is(shared.by, 'libbpf');
  assert.not.ok(existsSync('/sys/fs/bpf/shared_counts'), "not at libbpf's default path");
  // A second object declaring the same map reuses the pinned one (libbpf's pin-by-name contract).
  const second = await json<{ pins: { name: string; id: number; reused?: boolean }[] }>('load', objectFile('pin_by_name_reader'), '--pin', dir, '--quiet');
  const again = second.pins.find((p) => p.name === 'shared_counts')!;
  assert.is(again.id, shared.id, 'same map');
  assert.is(again.reused, true);
  const human = await run('unload', dir);
  assert.is(human.code, 0, human.stderr);
  assert.match(human.stdout, /unloaded pin_by_name, pin_by_name_reader from/);
  assert.not.ok(existsSync(dir));
  // The kernel frees a map a moment after its last reference goes.
  const gone = () => !listMaps().some((m) => m.id === shared.id && m.name === 'shared_counts');
  for (let i = 0; i < 40 && !gone(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(gone(), 'the shared map is gone with both loads');
});

test('unload DIR removes exactly what each load pinned; foreign pins stay', async () => {
  const dir = join(root, 'two');
  await json('load', objectFile('xdp_stats_array'), '--pin', dir, '--quiet');
  const foreign = BpfMap.create({ type: 'array', name: 'foreign', keySize: 4, valueSize: 4, maxEntries: 1 });
  foreign.pin(join(dir, 'maps/foreign'));
  foreign.close();
  const res = await json<{ loads: string[]; removed: string[]; kept: string[] }>('unload', dir);
  assert.equal(res.loads, ['xdp_stats_array']);
  assert.equal(res.kept, [join(dir, 'maps/foreign')]);
  assert.ok(existsSync(join(dir, 'maps/foreign')), 'not ours: kept');
  rmSync(join(dir, 'maps/foreign'));
  rmSync(dir, { recursive: true });
});

test("objects libbpf refuses: one line with libbpf's reason, nothing left behind", async () => {
  const progs = listPrograms().length;
  const sec = await run('load', objectFile('bad_section'), '--pin', join(root, 'bad'), '--quiet');
  assert.is(sec.code, 1);
  assert.is(sec.stderr.split('\n')[0], "bpfctl: load BPF object 'bad_section': libbpf: prog 'prog_parser': missing BPF prog type, check ELF section name 'sk_skb1' (EINVAL)");
  const legacy = await run('load', objectFile('bad_legacy_maps'), '--pin', join(root, 'bad'), '--quiet');
  assert.is(legacy.code, 1);
  assert.match(legacy.stderr.split('\n')[0]!, /^bpfctl: open BPF object \S+bad_legacy_maps\.bpf\.o: libbpf: elf: legacy map definitions in 'maps' section are not supported by libbpf v1\.0\+ \(ENOTSUP\)$/);
  const verbose = await run('load', objectFile('bad_section'), '--pin', join(root, 'bad'), '--verbose', '--quiet');
  // --verbose adds the rest of libbpf's messages, without repeating the quoted one.
  const rest = verbose.stderr.split('\nlibbpf:\n')[1] ?? '';
  assert.match(rest, /failed to load object/);
  assert.not.match(rest, /missing BPF prog type/);
  assert.not.ok(existsSync(join(root, 'bad')));
  assert.is(listPrograms().length, progs);
});

test('raw hex round-trips what dump prints (digit-only hex is bytes, as bpftool reads it)', async () => {
  const dir = join(root, 'hex');
  const pin = join(dir, 'nobtf');
  const m = BpfMap.create({ type: 'hash', name: 'hex_nobtf', keySize: 4, valueSize: 4, maxEntries: 8 });
  m.pin(pin);
  m.close();
  try {
    assert.is((await run('map', 'set', pin, '0', '05000000')).code, 0);
    assert.equal(await json('map', 'dump', pin), [{ key: '00000000', value: '05000000' }]);
    assert.is((await run('map', 'set', pin, '02000000', '05 00 00 00')).code, 0);
    assert.equal(await json('map', 'get', pin, '02000000'), { key: '02000000', value: '05000000' });
    assert.equal(await json('map', 'get', pin, '0x02000000'), { key: '02000000', value: '05000000' });
    assert.equal(await json('map', 'get', pin, '0x02 0x00 0x00 0x00'), { key: '02000000', value: '05000000' });
    assert.equal(await json('map', 'get', pin, '2'), { key: '02000000', value: '05000000' });
    assert.equal(await json('map', 'get', pin, '[2,0,0,0]'), { key: '02000000', value: '05000000' });
    // Every key dump printed reads back.
    for (const row of await json<{ key: string; value: string }[]>('map', 'dump', pin)) {
      assert.equal(await json('map', 'get', pin, row.key), row);
    }
    const short = await run('map', 'get', pin, '0x0203');
    assert.match(short.stderr, /key: expected 4 bytes as hex \(8 digits/);
    const three = await run('map', 'get', pin, '02 00 00');
    assert.match(three.stderr, /key: expected 4 hex bytes, got 3/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('nothing leaks', async () => {
  rmSync(objectsDir, { recursive: true, force: true });
  const left = existsSync(root) ? readdirSync(root) : [];
  assert.equal(left, []);
  assert.equal(await leaksSince(before, { ownDirs: [root] }), []);
  removeOwnDirs([root]);
});

test.run();
