import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfObject, LoaderError, listLinks } from '../../loader/index.ts';
import { fixtureObject, u32 } from '../fixtures/fixture-path.ts';
import { leaksSince, snapshot } from '../helpers/leaks.ts';

const root = '/sys/fs/cgroup/unified';
const cgroup = `${root}/bpfctl-test-${process.pid}`;
// Taken when this file's tests start, not at import: uvu imports every file before running any.
let before = snapshot();
test.before(() => {
  before = snapshot();
});

/** Our cgroup v2 path, to move back to. */
function currentCgroup(): string {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  return `${root}${line?.slice(3) ?? '/'}`.replace(/\/$/, '');
}

function count(obj: BpfObject, slot: number): bigint {
  return Buffer.from(obj.map('events').lookup(u32(slot))!).readBigUInt64LE(0);
}

async function connectOnce(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  await once(s, 'connect');
  return s;
}

test('sockops on a cgroup sees the connections of processes inside it, only', async () => {
  const home = currentCgroup();
  mkdirSync(cgroup);
  const obj = BpfObject.open(fixtureObject('sockops-count'));
  const server = createServer((s) => s.on('error', () => {}));
  const sockets: Socket[] = [];
  let link: { close(): void } | undefined;
  try {
    obj.load();
    const prog = obj.program('count_established');
    assert.is(prog.type, 'sock_ops');
    assert.is(prog.expectedAttachType, 'cgroup_sock_ops');
    const l = prog.attachCgroup(cgroup);
    link = l;
    const info = listLinks().find((x) => x.id === l.id);
    assert.is(info?.type, 'cgroup');
    assert.is(info?.attachType, 'cgroup_sock_ops');
    assert.match(info?.target ?? '', /^cgroup:\d+$/);

    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;

    // Outside the cgroup: not seen.
    sockets.push(await connectOnce(port));
    assert.is(count(obj, 0), 0n);

    // Inside: the connecting socket is the cgroup's; the accepted one belongs to the listener's
    // cgroup (it was created outside), so only the active side is seen.
    writeFileSync(`${cgroup}/cgroup.procs`, String(process.pid));
    try {
      const s = await connectOnce(port);
      sockets.push(s);
      const end = Date.now() + 1000;
      while (count(obj, 0) < 1n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      assert.is(count(obj, 0), 1n, 'active established');
      assert.is(count(obj, 1), 0n, 'the listener is outside the cgroup');
      assert.is(Number(count(obj, 2)), s.localPort, 'local_port is host order');
    } finally {
      writeFileSync(`${home}/cgroup.procs`, String(process.pid));
    }
    assert.throws(() => prog.attachCgroup(`${root}/bpfctl-no-such-cgroup`), (e: unknown) => e instanceof LoaderError && e.code === 'E_NOENT');
    assert.throws(() => prog.attachCgroup(cgroup, 'no_such_attach'), /unknown attach type/);
  } finally {
    for (const s of sockets) s.destroy();
    link?.close();
    obj.close();
    server.close();
    if (existsSync(cgroup)) rmdirSync(cgroup);
  }
});

test('nothing leaked', async () => {
  await new Promise((r) => setTimeout(r, 50));
  assert.not.ok(existsSync(cgroup), 'cgroup removed');
  assert.equal(await leaksSince(before), []);
});

test.run();
