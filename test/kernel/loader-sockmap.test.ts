import { once } from 'node:events';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, BpfObject, LoaderError } from '../../loader/index.ts';
import { fixtureObject, u32 } from '../fixtures/fixture-path.ts';
import { leaksSince, snapshot } from '../helpers/leaks.ts';

// Taken when this file's tests start, not at import: uvu imports every file before running any.
let before = snapshot();
test.before(() => {
  before = snapshot();
});

function fdOf(s: Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no fd');
  return fd;
}

/** A client connection to `server`, and the server side of it. */
async function connectPair(server: Server): Promise<{ client: Socket; peer: Socket }> {
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  const [peer] = await accepted;
  return { client, peer };
}

function collect(s: Socket): { text: () => string } {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  return { text: () => Buffer.concat(chunks).toString() };
}

function keysOf(m: BpfMap): number[] {
  const out: number[] = [];
  for (let k = m.nextKey(null); k; k = m.nextKey(k)) out.push(Buffer.from(k).readUInt32LE(0));
  return out;
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

test('sk_msg on a sockhash redirects data between two TCP connections', async () => {
  const obj = BpfObject.open(fixtureObject('sk-msg-redirect'));
  const server = createServer();
  const sockets: Socket[] = [];
  let attachment: { close(): void } | undefined;
  try {
    obj.load();
    const socks = obj.map('socks');
    // Gotcha 2: the verdict program goes on the map before any socket does.
    attachment = obj.program('redirect_msg').attachSockMap(socks, 'msg_verdict');
    assert.throws(
      () => obj.program('redirect_msg').attachSockMap(obj.map('target'), 'msg_verdict'),
      (e: unknown) => e instanceof LoaderError && /not a sockmap or sockhash/.test(e.message),
    );

    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const one = await connectPair(server);
    const two = await connectPair(server);
    sockets.push(one.client, one.peer, two.client, two.peer);
    for (const s of sockets) s.on('error', () => {}); // gotcha 8: a failed redirect is an 'error' event
    const gotOnePeer = collect(one.peer);
    const gotTwoPeer = collect(two.peer);
    const gotTwoClient = collect(two.client);

    obj.map('target').update(u32(0), u32(2));
    socks.updateFd(u32(1), fdOf(one.client));
    socks.updateFd(u32(2), fdOf(two.peer));
    assert.equal(keysOf(socks).sort(), [1, 2]);
    assert.throws(() => socks.lookup(u32(1)), (e: unknown) => e instanceof LoaderError && e.code === 'E_NOTSUPP' && /value_size 8/.test(e.message));

    // Sent on connection one, arrives in connection two's server socket (BPF_F_INGRESS, gotcha 3).
    one.client.write('hello through sk_msg');
    await until(() => gotTwoPeer.text().length >= 20);
    assert.is(gotTwoPeer.text(), 'hello through sk_msg');
    assert.is(gotOnePeer.text(), '', 'the original peer got nothing');
    assert.is(gotTwoClient.text(), '', 'ingress redirect does not go out to the other end');
    const verdicts = obj.map('verdicts');
    assert.ok(Buffer.from(verdicts.lookup(u32(0))!).readBigUInt64LE(0) >= 1n);

    // A socket that is not in the map is not redirected.
    two.client.write('plain tcp');
    await until(() => gotTwoPeer.text().includes('plain tcp'));
    assert.is(gotTwoPeer.text(), 'hello through sk_msg' + 'plain tcp');

    // Closing a socket removes it from the map.
    one.client.destroy();
    await until(() => !keysOf(socks).includes(1));
    assert.equal(keysOf(socks), [2]);
    assert.not.ok(socks.delete(u32(1)));
    assert.throws(() => socks.updateFd(u32(3), 0), (e: unknown) => e instanceof LoaderError);
  } finally {
    for (const s of sockets) s.destroy();
    attachment?.close();
    obj.close();
    server.close();
  }
});

test('sk_skb parser and verdict attach to a sockmap and detach', () => {
  const obj = BpfObject.open(fixtureObject('sk-msg-redirect'));
  const map = BpfMap.create({ type: 'sockmap', name: 'bt_sockmap', keySize: 4, valueSize: 4, maxEntries: 4 });
  try {
    obj.load();
    assert.is(obj.program('skb_parse').type, 'sk_skb');
    const parser = obj.program('skb_parse').attachSockMap(map, 'skb_parser');
    const verdict = obj.program('skb_pass').attachSockMap(map, 'skb_verdict');
    assert.throws(
      () => obj.program('skb_pass').attachSockMap(map, 'msg_verdict'),
      (e: unknown) => e instanceof LoaderError && /sk_skb program, msg_verdict needs sk_msg/.test(e.message),
    );
    verdict.detach();
    verdict.detach(); // idempotent
    parser.close();
    // Attaching again after detach works: nothing stale was left on the map.
    obj.program('skb_pass').attachSockMap(map, 'skb_verdict').close();
  } finally {
    map.close();
    obj.close();
  }
});

test('nothing leaked', async () => {
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await leaksSince(before), []);
});

test.run();
