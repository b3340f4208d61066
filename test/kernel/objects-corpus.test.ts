/**
 * The whole corpus (test/objects: libbpf-bootstrap, xdp-tutorial, selftests, service-mesh, tc,
 * cgroup and tracing styles), each object through the same round: load and pin under bpftool's
 * names, dump every map, read back every row dump printed with get (by the exact text dump
 * printed, decoded and raw), write it back with set and read the same value again (frozen
 * .rodata refuses, in one line), then unload and find nothing left. Attachment behaviour is in
 * objects-attach; map kinds in objects-maps; globals in objects-globals.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { leaksSince, removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { objectFile, objectsDir } from '../objects/build.ts';
import { cliJson as json, runCli as run } from '../helpers/cli.ts';

const root = `/sys/fs/bpf/bpfctl-test-${process.pid}`;
const sources = join(dirname(fileURLToPath(import.meta.url)), '../objects');
const corpus = readdirSync(sources)
  .filter((f) => f.endsWith('.bpf.c') && !f.startsWith('bad_'))
  .map((f) => f.replace(/\.bpf\.c$/, ''))
  .sort();
let before: Snapshot;

/** What dump prints for a key or value, as text to type back. */
const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
const FD_VALUED = new Set(['sockmap', 'sockhash', 'xskmap', 'devmap', 'devmap_hash', 'cpumap', 'prog_array', 'array_of_maps', 'hash_of_maps', 'perf_event_array']);

test.before(async () => {
  await new Promise((r) => setTimeout(r, 500)); // let tsx settle its cache fds (see objects-maps)
  before = snapshot();
});

test('the corpus has at least 15 objects in the styles found in the wild', () => {
  assert.ok(corpus.length >= 15, `${corpus.length} objects: ${corpus.join(', ')}`);
});

for (const name of corpus) {
  test(`${name}: load, pin, dump, get/set round trip of what dump printed, unload, nothing left`, async () => {
    const dir = join(root, name);
    const res = await json<{ pins: { kind: string; name: string; type: string; pin: string }[] }>('load', objectFile(name), '--pin', dir, '--quiet');
    assert.ok(res.pins.some((p) => p.kind === 'prog'), 'programs pinned');
    for (const p of res.pins) {
      assert.ok(existsSync(p.pin), p.pin);
      assert.not.match(p.pin.slice(root.length), /\./, `pin names have no dots: ${p.pin}`);
    }
    for (const m of res.pins.filter((p) => p.kind === 'map')) {
      if (m.type === 'ringbuf') {
        const r = await run('map', 'dump', m.pin);
        assert.is(r.code, 1);
        assert.match(r.stderr, /^bpfctl: map 'rb' \(ringbuf\) has no keys and values to read .*\n$/);
        continue;
      }
      const rows = await json<{ key: unknown; value: unknown }[]>('map', 'dump', m.pin);
      const raw = await json<{ key: string; value: unknown }[]>('map', 'dump', m.pin, '--raw');
      assert.is(raw.length, rows.length, `${m.name}: raw and decoded dumps agree on the entries`);
      for (const [i, row] of rows.slice(0, 4).entries()) {
        // The exact text dump printed reads back, decoded and raw.
        assert.equal(await json('map', 'get', m.pin, text(row.key)), row, `${m.name}: get ${text(row.key)}`);
        if (!FD_VALUED.has(m.type)) assert.equal(await json('map', 'get', m.pin, raw[i]!.key, '--raw'), raw[i], `${m.name}: get --raw ${raw[i]!.key}`);
        if (FD_VALUED.has(m.type)) continue;
        const set = await run('map', 'set', m.pin, text(row.key), text(row.value));
        if (m.name.endsWith('.rodata') || m.name.includes('.rodata.') || m.name.endsWith('.kconfig')) {
          assert.is(set.code, 1, `${m.name} is frozen`);
          assert.match(set.stderr, /^bpfctl: map '.+' holds \.(rodata|kconfig)\S*, which the kernel froze at load: set its variables before load .*\n$/);
          continue;
        }
        assert.is(set.code, 0, `${m.name}: set ${text(row.key)} ${text(row.value)}: ${set.stderr}`);
        assert.equal(await json('map', 'get', m.pin, text(row.key)), row, `${m.name}: set then get gives what was set`);
        // The same with the raw bytes dump --raw printed (per-CPU maps: every CPU's bytes).
        const rawSet = await run('map', 'set', m.pin, raw[i]!.key, text(raw[i]!.value), '--raw');
        assert.is(rawSet.code, 0, `${m.name}: set --raw: ${rawSet.stderr}`);
        assert.equal(await json('map', 'get', m.pin, raw[i]!.key, '--raw'), raw[i], `${m.name}: set --raw then get --raw`);
      }
    }
    const un = await json<{ removed: string[]; kept: string[]; warnings: string[] }>('unload', dir);
    assert.is(un.removed.length, res.pins.length);
    assert.equal(un.kept, []);
    assert.equal(un.warnings, []);
    assert.not.ok(existsSync(dir), 'the directory and the parents the load made are gone');
  });
}

test('nothing leaks', async () => {
  rmSync(objectsDir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [root] }), []);
  removeOwnDirs([root]);
});

test.run();
