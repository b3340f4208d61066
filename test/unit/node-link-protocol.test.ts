/**
 * The node-link's DATA records and the batch they are built in: what appendRecord writes the
 * cursor reads back field for field (property test), a body cut anywhere is refused rather than
 * misread, and a batch reused after a write never changes bytes a socket still holds (real
 * loopback TCP, with the reader paused so writes queue in Node).
 */
import net from 'node:net';
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ByteBatch } from '../../src/runtime/node-link/batch.ts';
import { appendRecord, FrameParser, putFrameHead, RecordCursor, T_DATA } from '../../src/runtime/node-link/protocol.ts';
import { DESC_SIZE } from '../../src/schema/descriptor.ts';

const record = fc.record({
  desc: fc.uint8Array({ minLength: DESC_SIZE, maxLength: DESC_SIZE }),
  toGateway: fc.boolean(),
  token: fc.nat({ max: 0xffffffff }),
  route: fc.string({ maxLength: 60 }).filter((r) => Buffer.byteLength(r) <= 255),
  payload: fc.uint8Array({ maxLength: 5000 }),
});

interface Rec {
  desc: Uint8Array;
  toGateway: boolean;
  token: number;
  route: string;
  payload: Uint8Array;
}

function build(recs: Rec[]): Buffer {
  const batch = new ByteBatch(5);
  for (const r of recs) {
    // The descriptor is read from the middle of a larger buffer, as from a chain socket's chunk.
    const chunk = Buffer.concat([Buffer.alloc(7, 0xee), Buffer.from(r.desc), Buffer.alloc(3, 0xdd)]);
    appendRecord(batch, chunk, 7, r.toGateway, r.token, Buffer.from(r.route), r.payload);
  }
  assert.is(batch.count, recs.length);
  const frame = Buffer.from(batch.bytes());
  putFrameHead(frame, T_DATA);
  return frame;
}

function parse(body: Buffer): { desc: number[]; toGateway: boolean; token: number; route: string; payload: number[] }[] | null {
  const c = new RecordCursor();
  c.reset(body);
  const out = [];
  for (;;) {
    const ok = c.next();
    if (ok === null) return null;
    if (!ok) return out;
    out.push({ desc: [...body.subarray(c.descAt, c.descAt + DESC_SIZE)], toGateway: c.toGateway, token: c.token, route: c.route(), payload: [...c.payload()] });
  }
}

test('law: records appended to a batch are read back field for field, through the frame parser', () => {
  fc.assert(
    fc.property(fc.array(record, { maxLength: 20 }), (recs) => {
      const frame = build(recs);
      const bodies: Buffer[] = [];
      const p = new FrameParser((type, body) => {
        assert.is(type, T_DATA);
        bodies.push(Buffer.from(body));
      });
      // Delivered in two pieces cut anywhere, as TCP may.
      const cut = Math.floor(frame.length / 3);
      assert.ok(p.push(frame.subarray(0, cut)) && p.push(frame.subarray(cut)));
      assert.is(bodies.length, 1);
      assert.equal(
        parse(bodies[0]!),
        recs.map((r) => ({ desc: [...r.desc], toGateway: r.toGateway, token: r.token, route: r.route, payload: [...r.payload] })),
      );
    }),
    { numRuns: 200 },
  );
});

test('law: a body cut short anywhere inside a record is malformed, never misread', () => {
  fc.assert(
    fc.property(fc.array(record, { minLength: 1, maxLength: 5 }), fc.nat(), (recs, at) => {
      const body = build(recs).subarray(5);
      const cut = at % body.length;
      const parsed = parse(body.subarray(0, cut));
      // Either it ends exactly between records (a shorter batch, a prefix of the records) or it is refused.
      if (parsed !== null) {
        assert.ok(parsed.length < recs.length);
        const whole = build(recs.slice(0, parsed.length)).subarray(5);
        assert.is(whole.length, cut);
      }
    }),
    { numRuns: 300 },
  );
});

test('a reused batch never changes bytes a socket still holds (writes queued behind a paused reader)', async () => {
  const received: Buffer[] = [];
  let server: net.Socket | null = null;
  const srv = net.createServer((s) => {
    server = s;
    s.pause();
    s.on('data', (c: Buffer) => received.push(c));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  while (!server) await new Promise((r) => setTimeout(r, 5));
  const batch = new ByteBatch(0);
  const expect: Buffer[] = [];
  let queuedSeen = false;
  // 400 batches of 16 KiB, each filled with its own byte: far more than the kernel buffers hold.
  for (let i = 0; i < 400; i++) {
    const b = batch.room(16384);
    b.fill(i & 0xff, batch.offset, batch.offset + 16384);
    batch.commit(16384);
    expect.push(Buffer.alloc(16384, i & 0xff));
    batch.writeTo(client);
    if (client.writableLength > 0) queuedSeen = true;
  }
  assert.ok(queuedSeen, 'the test must make writes queue in Node, or it proves nothing');
  (server as net.Socket).resume();
  const total = expect.length * 16384;
  const until = Date.now() + 10_000;
  const got = () => received.reduce((a, c) => a + c.length, 0);
  while (got() < total && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  assert.is(got(), total, 'every byte arrived');
  assert.ok(Buffer.concat(received).equals(Buffer.concat(expect)), 'every byte as it was written');
  client.destroy();
  (server as net.Socket).destroy();
  await new Promise((r) => srv.close(r));
});

test.run();
