/**
 * Hop 2 of the /detour-tcp route (../policy.ts): the reverse work done on node b, reached over a
 * plain TCP connection from this function on node a: the "plain TCP hop between the same
 * namespaces" the cross-node hop is measured against. The payload goes out framed as in the
 * chain bench's tcp variant (../../../chain/tcp/framing.ts: everything of one event-loop turn in
 * one write), the server (../../tcp-hop-server.ts, on b at $BENCH_NODES_TCP_HOP) reverses it and
 * sends it back on the same connection; the answer is written in place into the pool buffer.
 * One persistent connection, opened at the first request and again after it closes.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { FunctionError, type Request } from '../../../../src/runtime/sdk/index.ts';
import { FrameBatch, FrameSplitter } from '../../../chain/tcp/framing.ts';
import { PendingRing } from '../../../chain/tcp/pending.ts';

const target = process.env.BENCH_NODES_TCP_HOP ?? '';
const host = target.slice(0, target.lastIndexOf(':'));
const port = Number(target.slice(target.lastIndexOf(':') + 1));

interface Waiting {
  req: Request;
  resolve: (n: number) => void;
  reject: (e: Error) => void;
}

// An id-indexed ring, not a Map (bench/chain/tcp/pending.ts says why).
const pending = new PendingRing<Waiting>(1 << 12);
const out = new FrameBatch();
let sock: net.Socket | null = null;
let flushQueued = false;

const splitter = new FrameSplitter((buf, off, len, reqId) => {
  const w = pending.take(reqId);
  if (!w) return;
  buf.copy(w.req.buffer as Buffer, 0, off, off + len);
  w.resolve(len);
});

function connect(): net.Socket {
  const s = net.connect({
    host,
    port,
    noDelay: true,
    onread: {
      buffer: Buffer.allocUnsafe(64 * 1024),
      callback: (n: number, buf: Uint8Array) => {
        splitter.push(buf as Buffer, n);
        return true;
      },
    },
  } as net.TcpNetConnectOpts);
  s.on('error', () => {});
  s.on('close', () => {
    if (sock === s) sock = null;
    // Everything still waiting on this connection fails (the deadline is never in the future).
    pending.expire(Number.POSITIVE_INFINITY, (w) => w.reject(new FunctionError(502, `tcp hop to ${target} closed`)));
  });
  return s;
}

const flush = () => {
  flushQueued = false;
  const b = out.take();
  if (!b) return;
  sock ??= connect();
  sock.write(b);
};

export default function handler(req: Request): Promise<number> {
  if (!port) throw new FunctionError(500, 'BENCH_NODES_TCP_HOP is not set (host:port of the tcp hop server)');
  return new Promise((resolve, reject) => {
    const id = pending.add({ req, resolve, reject }, 0);
    if (id < 0) return reject(new FunctionError(503, 'too many requests on the tcp hop'));
    const len = req.body.length;
    const at = out.reserve(len);
    out.bytes.set(req.body, at);
    out.commit(at, len, id);
    if (!flushQueued) {
      flushQueued = true;
      setImmediate(flush);
    }
  });
}
