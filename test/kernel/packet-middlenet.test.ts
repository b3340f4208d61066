/**
 * MiddleNet's two halves on one host (examples/middlenet): one XDP classifier steers VXLAN into a
 * packet chain (decapsulate, count, transmit the inner frame on another interface) and lets HTTP
 * through to the kernel, the gateway and a request chain over sk_msg, both on one pool. bpfctl
 * runs inside the DUT namespace, as it would on a host; the sender and the overlay receiver are
 * namespaces of their own.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureBuilt } from '../helpers/dist.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { eth, ipv4, udp } from '../helpers/packets.ts';
import { sh } from '../helpers/sh.ts';
import { capture, cli, createRig, flood, NF_DIR, type Rig, type Running, send, sleep, startRun, tearDown } from './packet-rig.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const ID = `bpfctl-test-${process.pid}-mnet`;
const POLICY = `mnet${process.pid % 100000}`;
const HTTP_PORT = 18000 + (process.pid % 1000);
let rig: Rig;
let dir = '';
let before: Snapshot;
let run: Running | null = null;

function writePolicy(first = `'${NF_DIR}/vxlan_decap.c'`): string {
  const file = join(dir, 'policy.ts');
  writeFileSync(
    file,
    `import { definePolicy, pass, toChain, xdpSection } from 'bpfctl';
export default definePolicy({
  name: '${POLICY}',
  functions: { upper: { instances: 1, handler: '${join(repo, 'examples/middlenet/functions/upper.ts')}' } },
  routes: { '/upper': ['upper'] },
  pool: { bufferSize: 2048, bufferCount: 1024 },
  packetFunctions: {
    decap: { handler: ${first} },
    count: { handler: '${NF_DIR}/count.c' },
  },
  packetChains: { overlay: { functions: ['decap', 'count'], egress: { tx: '${rig.ifs.dOut}' } } },
  xdp: [xdpSection({ interface: '${rig.ifs.dIn}', rules: [toChain('overlay', { proto: 'udp', dport: 4789 }, { name: 'vxlan' }), pass({}, { name: 'rest' })] })],
});
`,
  );
  return file;
}

/** The inner frame a tenant sent, and the VXLAN packet that carries it to the DUT. */
function vxlan(i: number): { inner: Uint8Array; outer: Uint8Array } {
  const inner = eth({ src: '02:aa:00:00:00:01', dst: '02:aa:00:00:00:02' }, ipv4({ src: '10.1.0.1', dst: '10.1.0.2' }, udp({ sport: 7000 + i, dport: 7001 }, Uint8Array.from(Buffer.from(`overlay frame ${i}`)))));
  const header = Uint8Array.from([0x08, 0, 0, 0, 0, 0x12, 0x34, 0]); // flags: VNI valid; VNI 0x1234
  const outer = eth({ src: rig.mac[rig.ifs.sX]!, dst: rig.mac[rig.ifs.dIn]! }, ipv4({ src: rig.ip.s, dst: rig.ip.dIn }, udp({ sport: 50000 + i, dport: 4789 }, Uint8Array.from([...header, ...inner]))));
  return { inner, outer };
}

const POST = `
import sys, urllib.request
r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method='POST'), timeout=5)
print(r.status, r.read().decode())
`;

const MANY_POSTS = `
import sys, urllib.request
codes = []
for i in range(int(sys.argv[2])):
    try:
        r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b'hello', method='POST'), timeout=5)
        codes.append(r.status)
    except Exception as e:
        codes.append(getattr(e, 'code', 0))
bad = [c for c in codes if c != 200]
print('200 x%d' % len(codes) if not bad else 'failed: %s' % bad)
`;

test.before(() => {
  ensureBuilt();
  before = snapshot();
  dir = mkdtempSync(join(tmpdir(), `${ID}-`));
  rig = createRig(ID, `mn${process.pid % 10000}`, 78);
});

test.after(() => tearDown(rig, run, dir));

test('one classifier, two paths: VXLAN through the packet chain, HTTP through the request chain', async () => {
  run = await startRun(rig, [writePolicy(), '--host', '0.0.0.0', '--port', String(HTTP_PORT), '--pool', ID], rig.ns.d);
  // HTTP from the sender namespace: XDP passes it, the kernel's TCP stack and the gateway take it.
  const answer = sh('ip', ['netns', 'exec', rig.ns.s, 'python3', '-c', POST, `http://${rig.ip.dIn}:${HTTP_PORT}/upper`, 'hello middlenet']).trim();
  assert.is(answer, '200 HELLO MIDDLENET');

  const frames = Array.from({ length: 10 }, (_, i) => vxlan(i));
  const got = await capture(rig.ns.r, rig.ifs.rX, 2000, () =>
    send(
      rig.ns.s,
      rig.ifs.sX,
      frames.map((f) => f.outer),
    ),
  );
  const inner = got.filter((f) => f[0] === 0x02 && f[1] === 0xaa);
  assert.equal(
    inner.map((f) => Buffer.from(f).toString('hex')),
    frames.map((f) => Buffer.from(f.inner).toString('hex')),
    'each inner frame, decapsulated, byte for byte, in order',
  );
  await sleep(300);
  const st = JSON.parse(cli(rig, ['status', POLICY, '--json']).stdout);
  const overlay = st.packet.chains.find((c: { name: string }) => c.name === 'overlay');
  assert.is(overlay.in, 10);
  assert.is(overlay.out, 10);
  const route = st.routes.find((r: { name: string }) => r.name === '/upper');
  assert.ok(route.msgs >= 2, 'the request went through the sk_msg chain');
  assert.equal(st.processes.map((p: { kind: string }) => p.kind).sort(), ['function', 'gateway', 'packet', 'packet', 'pktio']);
});

test('a VXLAN flood into a slow packet chain cannot take the buffers HTTP requests need', async () => {
  run!.child.kill('SIGINT');
  assert.is(await run!.exited, 0, run!.stderr);
  // The same policy with a first function that handles ~50 batches a second: frames pile up.
  run = await startRun(rig, [writePolicy(`'${join(repo, 'test/fixtures/slow-nf.c')}'`), '--host', '0.0.0.0', '--port', String(HTTP_PORT), '--pool', ID], rig.ns.d);
  const flooding = flood(rig.ns.s, rig.ifs.sX, 4, 20000, vxlan(1).outer);
  await sleep(1000);
  let peak = 0;
  const sampling = (async () => {
    for (let i = 0; i < 10; i++) {
      const st = JSON.parse(cli(rig, ['status', POLICY, '--json']).stdout);
      peak = Math.max(peak, st.packet.pool.inUse);
      await sleep(200);
    }
  })();
  // 40 requests in a row while the flood goes on: every one answered.
  const answers = sh('ip', ['netns', 'exec', rig.ns.s, 'python3', '-c', MANY_POSTS, `http://${rig.ip.dIn}:${HTTP_PORT}/upper`, '40']).trim();
  await sampling;
  const sent = await flooding;
  assert.is(answers, '200 x40', 'no request failed for want of a buffer');
  const st = JSON.parse(cli(rig, ['status', POLICY, '--json']).stdout);
  const overlay = st.packet.chains.find((c: { name: string }) => c.name === 'overlay');
  assert.ok(sent > 20000, `the flood was real (${sent} frames)`);
  assert.ok(overlay.lost > 0, `frames beyond the packet part's share were dropped and counted (${JSON.stringify(overlay)})`);
  assert.ok(peak <= 1024 / 2 + 64, `the packet part held at most half the pool (peak ${peak} of 1024 in use)`);
});

test('Ctrl-C stops both halves and leaves nothing', async () => {
  run!.child.kill('SIGINT');
  assert.is(await run!.exited, 0, run!.stderr);
  rig.destroy();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [rig.env.BPFCTL_BPFFS!, rig.env.BPFCTL_RUN_DIR!] }), []);
});

test.run();
