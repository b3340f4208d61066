/**
 * The loader's spec side, without root and without the kernel: what an object declares
 * (programs, maps with BTF key/value types, LIBBPF_PIN_BY_NAME paths, global variables) read
 * from the ELF; libbpf's own reason when it refuses one; the error code union; and the one rule
 * for raw bytes on the command line.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoaderError, objectSpecFromBuffer, readObjectSpec } from '../../loader/index.ts';
import { loaderError } from '../../loader/errors.ts';
import { parseBytesLiteral } from '../../src/schema/literal.ts';
import { objectFile, objectsDir } from '../objects/build.ts';

test('a spec lists programs, maps (with BTF types and sections) and globals', () => {
  const spec = readObjectSpec(objectFile('bootstrap_exec'));
  assert.is(spec.name, 'bootstrap_exec');
  assert.equal(
    spec.programs.map((p) => [p.name, p.section, p.type]),
    [['handle_getppid', 'tp/syscalls/sys_enter_getppid', 'tracepoint']],
  );
  assert.equal(
    spec.maps.map((m) => [m.name, m.type, m.section ?? null, Boolean(m.internal)]),
    [
      ['rb', 'ringbuf', null, false],
      ['bootstra.rodata', 'array', '.rodata', true],
      ['bootstra.bss', 'array', '.bss', true],
      ['bootstra.data', 'array', '.data', true],
    ],
  );
  assert.equal(
    spec.globals.map((g) => [g.name, g.section, g.offset, g.size, g.readonly]),
    [
      ['target_pid', '.rodata', 0, 4, true],
      ['max_events', '.rodata', 8, 8, true],
      ['greeting', '.rodata', 16, 12, true],
      ['last_pid', '.bss', 0, 4, false],
      ['events_seen', '.bss', 8, 8, false],
      ['events_dropped', '.bss', 16, 8, false],
      ['seq', '.data', 0, 4, false],
    ],
  );
  assert.ok(Object.isFrozen(spec) && Object.isFrozen(spec.maps), 'plain, frozen data');
  const stats = readObjectSpec(objectFile('xdp_stats_percpu')).maps[0]!;
  assert.equal(stats.btf?.value, {
    kind: 'struct',
    name: 'datarec',
    size: 16,
    members: [
      { name: 'rx_packets', offsetBits: 0, type: { kind: 'int', name: 'unsigned long long', size: 8, signed: false } },
      { name: 'rx_bytes', offsetBits: 64, type: { kind: 'int', name: 'unsigned long long', size: 8, signed: false } },
    ],
  });
});

test('LIBBPF_PIN_BY_NAME maps carry their pin path under the pin root', () => {
  const spec = readObjectSpec(objectFile('pin_by_name'), { pinRoot: '/sys/fs/bpf/somewhere/maps' });
  assert.is(spec.maps.find((m) => m.name === 'shared_counts')?.pinPath, '/sys/fs/bpf/somewhere/maps/shared_counts');
  assert.is(spec.maps.find((m) => m.name === 'private_count')?.pinPath, undefined);
});

test("an object libbpf refuses at open: E_ELF with libbpf's reason", () => {
  assert.throws(
    () => readObjectSpec(objectFile('bad_legacy_maps')),
    (e: unknown) => e instanceof LoaderError && e.code === 'E_ELF' && /libbpf: elf: legacy map definitions in 'maps' section are not supported/.test(e.message),
  );
  const mem = objectSpecFromBuffer(execFileSync('cat', [objectFile('xdp_tailcall')]), 'from_memory');
  assert.equal(
    mem.programs.map((p) => p.name),
    ['xdp_entry', 'xdp_slot_pass', 'xdp_slot_drop'],
  );
});

test('specs need no privileges: the same spec as nobody', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bpfctl-spec-'));
  try {
    chmodSync(dir, 0o755);
    const obj = join(dir, 'bootstrap_exec.bpf.o');
    copyFileSync(objectFile('bootstrap_exec'), obj);
    chmodSync(obj, 0o644);
    const child = fileURLToPath(new URL('../objects/spec-child.ts', import.meta.url));
    const args = ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', `HOME=${tmpdir()}`, process.execPath, '--import', 'tsx', child, obj];
    const out = process.getuid?.() === 0 ? execFileSync('setpriv', args, { encoding: 'utf8' }) : execFileSync(process.execPath, args.slice(5), { encoding: 'utf8' });
    const asNobody = JSON.parse(out) as { programs: unknown[]; globals: { name: string }[] };
    const mine = readObjectSpec(obj);
    assert.equal(asNobody.programs, JSON.parse(JSON.stringify(mine.programs)));
    assert.equal(
      asNobody.globals.map((g) => g.name),
      mine.globals.map((g) => g.name),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('error codes: E_EXIST (it exists) is not E_BUSY (something holds it)', () => {
  assert.is(loaderError('update map x', 17).code, 'E_EXIST');
  assert.is(loaderError('attach', 16).code, 'E_BUSY');
  assert.is(loaderError('open', 2).code, 'E_NOENT');
  assert.is(loaderError('x', 95).code, 'E_NOTSUPP');
  assert.is(loaderError('x', 4001).code, 'E_ELF');
});

test('raw bytes: one rule, reading back what dump prints', () => {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  assert.is(hex(parseBytesLiteral('05000000', 4)), '05000000', 'digit-only hex of the full width is bytes');
  assert.is(hex(parseBytesLiteral('0x02000000', 4)), '02000000');
  assert.is(hex(parseBytesLiteral('05 00 00 00', 4)), '05000000');
  assert.is(hex(parseBytesLiteral('0x5 0x0 0x0 0x0', 4)), '05000000');
  assert.is(hex(parseBytesLiteral('aa:bb:cc:dd:ee:ff', 6)), 'aabbccddeeff');
  assert.is(hex(parseBytesLiteral('[1,2,3,4]', 4)), '01020304');
  assert.is(hex(parseBytesLiteral('258', 4)), '02010000', 'other decimals are integers, little-endian');
  assert.is(hex(parseBytesLiteral('+12345678', 4)), '4e61bc00', 'a sign forces decimal');
  assert.is(hex(parseBytesLiteral('-1', 2)), 'ffff');
  assert.throws(() => parseBytesLiteral('0x0102', 4), /expected 4 bytes as hex \(8 digits/);
  assert.throws(() => parseBytesLiteral('05 00 00', 4), /expected 4 hex bytes, got 3/);
  assert.throws(() => parseBytesLiteral('70000', 2), /does not fit in 2 bytes/);
  assert.throws(() => parseBytesLiteral('zz', 4), /expected 4 bytes as 00000000, hex bytes separated by spaces, a JSON byte array or an integer/);
});

test.after(() => {
  rmSync(objectsDir, { recursive: true, force: true });
});

test.run();
