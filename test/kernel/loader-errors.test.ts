import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfObject, LoaderError, listMaps, listPrograms, VerifierError } from '../../loader/index.ts';
import { compileBpf } from '../../src/compile/compile-bpf.ts';
import { fixtureObject } from '../fixtures/fixture-path.ts';
import { leaksSince, removeOwnDirs, snapshot } from '../helpers/leaks.ts';

const pinDir = `/sys/fs/bpf/bpfctl-test-${process.pid}`;
// Made when this file's tests start, not at import: uvu imports every file before running any,
// and a directory made then would be in every other file's leak window.
let tmp = '';
// Taken when this file's tests start, not at import.
let before = snapshot();
test.before(() => {
  before = snapshot();
  tmp = mkdtempSync(join(tmpdir(), 'bpfctl-loader-'));
});

test('a program the verifier rejects: one-line message, full log, nothing left behind', () => {
  const progsBefore = new Set(listPrograms().map((p) => p.id));
  const mapsBefore = new Set(listMaps().map((m) => m.id));
  const obj = BpfObject.open(fixtureObject('verifier-reject'));
  let err: unknown;
  try {
    obj.load();
  } catch (e) {
    err = e;
  }
  assert.instance(err, VerifierError);
  const v = err as VerifierError;
  assert.is(v.code, 'E_VERIFIER');
  assert.is(v.program, 'unchecked_read');
  assert.not.match(v.message, /\n/, 'message is one line');
  assert.match(v.message, /prog 'unchecked_read'/);
  assert.match(v.message, /\(71\) r\d = \*\(u8 \*\)\(r\d \+12\)/, 'names the failing instruction');
  assert.match(v.message, /invalid access to packet/, 'and the reason');
  assert.match(v.message, /\(\d+ lines omitted\)$/);
  assert.ok(v.log.length > 3);
  assert.ok(v.log.some((l) => /processed \d+ insns/.test(l)), 'the full log is kept');
  assert.is(v.detail().split('\n').length, v.log.length + 1);
  assert.is((v.toJSON() as { log: string[] }).log.length, v.log.length);
  assert.throws(() => obj.program('good_prog'), /failed/);
  obj.close();
  // Neither the map nor the program that did verify may survive a failed load.
  const newProgs = listPrograms().filter((p) => !progsBefore.has(p.id));
  const newMaps = listMaps().filter((m) => !mapsBefore.has(m.id));
  assert.equal(newProgs, [], 'no program left');
  assert.equal(newMaps.filter((m) => m.name === 'reject_seen'), [], 'no map left');
  assert.not.ok(existsSync(pinDir), 'no pins');
});

test('a verifier log bigger than the first buffer is retried until it fits', () => {
  const obj = BpfObject.open(fixtureObject('verifier-long-log'));
  try {
    assert.throws(
      () => obj.load(),
      (e: unknown) =>
        e instanceof VerifierError &&
        !e.truncated &&
        e.log[0]!.startsWith('0: R1=ctx()') && // the start survived, not just the (rotated) tail
        e.log.join('\n').length > 1024 * 1024 &&
        /invalid access to packet/.test(e.message) &&
        /\(\d{4,} lines omitted\)$/.test(e.message),
    );
  } finally {
    obj.close();
  }
});

test('a missing file is E_NOENT with the path', () => {
  const path = join(tmp, 'nope.bpf.o');
  assert.throws(
    () => BpfObject.open(path),
    (e: unknown) => e instanceof LoaderError && e.code === 'E_NOENT' && e.message.includes(path) && /no such file/.test(e.message),
  );
});

test('a file that is not ELF is E_ELF', () => {
  const path = join(tmp, 'text.bpf.o');
  writeFileSync(path, 'int main() { return 0; }\n');
  assert.throws(() => BpfObject.open(path), (e: unknown) => e instanceof LoaderError && e.code === 'E_ELF' && /not an ELF file/.test(e.message));
  assert.throws(() => BpfObject.openBuffer(new Uint8Array(2), 'tiny'), /not an ELF file/);
});

test('a truncated ELF is E_ELF with libbpf’s reason', () => {
  const good = readFileSync(fixtureObject('maps'));
  const path = join(tmp, 'truncated.bpf.o');
  writeFileSync(path, good.subarray(0, 200));
  let err: unknown;
  try {
    BpfObject.open(path).close();
  } catch (e) {
    err = e;
  }
  assert.instance(err, LoaderError);
  const l = err as LoaderError;
  assert.is(l.code, 'E_ELF');
  assert.match(l.message, /truncated\.bpf\.o/);
  assert.ok(l.libbpfLog.length > 0, 'libbpf messages captured');
  assert.match(l.detail(), /libbpf:/);
});

test('openBuffer loads the same object from memory', () => {
  const obj = BpfObject.openBuffer(readFileSync(fixtureObject('maps')), 'from_mem');
  try {
    assert.is(obj.name, 'from_mem');
    obj.load();
    assert.is(obj.program('count_packets').type, 'xdp');
    assert.throws(() => obj.map('nope'), (e: unknown) => e instanceof LoaderError && e.code === 'E_NOENT' && /maps: /.test(e.message));
  } finally {
    obj.close();
  }
});

test('without privileges: E_PERM with the capability hint', () => {
  const child = fileURLToPath(new URL('../fixtures/unprivileged-child.ts', import.meta.url));
  // The compile cache is root's (~/.cache, mode 0700): the unprivileged child gets its own copy.
  const shared = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-unpriv-`));
  let out: string;
  try {
    chmodSync(shared, 0o755);
    const obj = join(shared, 'maps.bpf.o');
    copyFileSync(fixtureObject('maps'), obj);
    chmodSync(obj, 0o644);
    out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', `HOME=${tmpdir()}`, process.execPath, '--import', 'tsx', child, obj], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } finally {
    rmSync(shared, { recursive: true, force: true });
  }
  const [create, load] = JSON.parse(out) as { code: string; errno: number; message: string }[];
  for (const e of [create!, load!]) {
    assert.is(e.code, 'E_PERM');
    assert.is(e.errno, 1);
    assert.match(e.message, /CAP_BPF/);
    assert.match(e.message, /MEMLOCK/);
  }
});

test('a load in a process flooded with signals (a CPU profiler) says so, not that the verifier rejected it', () => {
  // node --cpu-prof samples with SIGPROF; every 50 us is faster than chain_msg verifies, so the
  // verifier stops with EAGAIN on every try libbpf makes.
  const src = `import { BpfObject } from ${JSON.stringify(fileURLToPath(new URL('../../loader/index.ts', import.meta.url)))};
const obj = BpfObject.open(process.argv[1]);
try { obj.load(); process.stdout.write(JSON.stringify({ loaded: true })); }
catch (e) { process.stdout.write(JSON.stringify({ code: e.code, errno: e.errno, message: e.message })); }
finally { obj.close(); }`;
  const prof = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-prof-`));
  let out: string;
  try {
    out = execFileSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', prof, '--cpu-prof-interval', '50', '--import', 'tsx', '--input-type=module', '-e', src, compileBpf(fileURLToPath(new URL('../../bpf/chain/chain.bpf.c', import.meta.url))).objectPath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    rmSync(prof, { recursive: true, force: true });
  }
  const r = JSON.parse(out) as { loaded?: boolean; code?: string; errno?: number; message?: string };
  assert.is(r.loaded, undefined, 'a 50 us SIGPROF outruns the verifier on this program');
  assert.is(r.code, 'E_VERIFIER');
  assert.is(r.errno, 11);
  assert.match(r.message ?? '', /^prog '\w+' was not verified: the verifier was interrupted by signals/);
  assert.not.match(r.message ?? '', /rejected/);
});

test('nothing leaked', async () => {
  rmSync(tmp, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [pinDir] }), []);
  removeOwnDirs([pinDir]);
});

test.run();
