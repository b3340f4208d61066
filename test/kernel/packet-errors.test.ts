/**
 * Packet chains that cannot start, as `bpfctl run` reports them: a handler that does not compile
 * (clang's file:line:col), a command that does not exist or exits, an egress interface that does
 * not exist, a function that refuses its env. Each is one line on stderr, exit 1, and nothing is
 * left: no pins, pool file, XDP program, process or cgroup.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureBuilt } from '../helpers/dist.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { sh } from '../helpers/sh.ts';
import { cli, createRig, NF_DIR, type Rig } from './packet-rig.ts';

const ID = `bpfctl-test-${process.pid}-pkterr`;
const POLICY = `pe${process.pid % 100000}`;
let rig: Rig;
let dir = '';
let before: Snapshot;

function policy(fn: string, egress?: string): string {
  const file = join(dir, 'policy.ts');
  writeFileSync(
    file,
    `import { definePolicy, toChain, xdpSection } from 'bpfctl';
export default definePolicy({
  name: '${POLICY}',
  pool: { bufferSize: 2048, bufferCount: 256 },
  packetFunctions: { f: ${fn} },
  packetChains: { c: { functions: ['f'], egress: { tx: '${egress ?? rig.ifs.dOut}' } } },
  xdp: [xdpSection({ interface: '${rig.ifs.dIn}', rules: [toChain('c', { proto: 'udp' })] })],
});
`,
  );
  return file;
}

function nothingLeft(what: string): void {
  assert.not.ok(existsSync(join(rig.env.BPFCTL_BPFFS!, POLICY)), `${what}: pins`);
  assert.not.ok(existsSync(`/dev/shm/bpfctl-pool-${ID}`), `${what}: pool file`);
  assert.not.ok(existsSync(join(rig.env.BPFCTL_CGROUP_PARENT!, POLICY)), `${what}: cgroup`);
  assert.not.ok(JSON.parse(sh('ip', ['-n', rig.ns.d, '-j', 'link', 'show', 'dev', rig.ifs.dIn]))[0].xdp, `${what}: XDP program`);
}

test.before(() => {
  ensureBuilt();
  before = snapshot();
  dir = mkdtempSync(join(tmpdir(), `${ID}-`));
  rig = createRig(ID, `pe${process.pid % 10000}`, 82);
  writeFileSync(join(dir, 'bad.c'), '#include <bpfctl/packet.h>\nvoid bpfctl_nf_batch(struct bpfctl_nf *nf, struct bpfctl_pkt *pkts, unsigned n) { oops; }\n');
});

test.after(() => {
  rig.destroy();
  rmSync(dir, { recursive: true, force: true });
  rmSync(rig.env.BPFCTL_RUN_DIR!, { recursive: true, force: true });
});

for (const [what, fn, egress, expect] of [
  ['a handler that does not compile', `{ handler: './bad.c' }`, undefined, /cannot compile packet function .*bad\.c\n.*bad\.c:2:\d+: .*oops/],
  ['a command that does not exist', `{ command: ['/nonexistent/nf'] }`, undefined, /packetFunctions\.f\.command\[0\]: \/nonexistent\/nf: no such executable/],
  ['a command that exits at once', `{ command: ['/bin/false'] }`, undefined, /cannot start .*: f#0 \(pid \d+\) died before it registered \(exit code 1\)/],
  ['an egress interface that does not exist', `{ handler: '${NF_DIR}/count.c' }`, 'nosuch0', /packet port nosuch0: no such interface in netns/],
  ['a function that refuses its env', `{ handler: '${NF_DIR}/snat.c', env: { SNAT_ADDR: 'x', SNAT_PORTS: '1-2' } }`, undefined, /f: SNAT_ADDR must be an IPv4 address, got 'x'/],
] as const) {
  test(`${what}: one clear error, exit 1, nothing left`, () => {
    const r = cli(rig, ['run', policy(fn, egress), '--netns', rig.ns.d, '--pool', ID]);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, expect);
    assert.not.match(r.stderr, /\n\s+at .*\(.*\.js:\d+:\d+\)/, 'no stack trace');
    nothingLeft(what);
  });
}

test('and no process, fd or namespace of ours either', async () => {
  rig.destroy();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [rig.env.BPFCTL_BPFFS!, rig.env.BPFCTL_RUN_DIR!] }), []);
});

test.run();
