/**
 * The HTTP entry of the plain-TCP chain: the counterpart of bpfctl's gateway, built the same way
 * (keep-alive HTTP server, one write per event-loop turn towards the chain, replies matched by
 * request id) so that the two differ in the transport between functions only.
 *
 * Prints `listening <http port> <chain port>`; the first function connects to the chain port
 * and reads requests from it. Then, told `connect <port>` on stdin (the last function's
 * listener), it connects there for the replies and prints `connected`.
 */
import { Buffer } from 'node:buffer';
import http from 'node:http';
import net from 'node:net';
import { exitWithParent } from '../proc.ts';
import { FrameBatch, FrameSplitter } from './framing.ts';
import { PendingRing } from './pending.ts';

const MAX_BODY = 4096;
const TIMEOUT_MS = 5000;

let toChain: net.Socket | null = null;
let fromChain: net.Socket | null = null;
const pending = new PendingRing<http.ServerResponse>();
const out = new FrameBatch();
let flushScheduled = false;

const flush = () => {
  flushScheduled = false;
  const batch = out.take();
  if (batch) toChain?.write(batch);
};

const splitter = new FrameSplitter((buf, off, len, reqId) => {
  const res = pending.take(reqId);
  if (!res) return;
  // A copy: the read buffer is reused as soon as this returns.
  const body = Buffer.from(buf.subarray(off, off + len));
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': len });
  res.end(body);
});

const reply = (res: http.ServerResponse, status: number, text: string) => {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

const server = http.createServer({ keepAlive: true, noDelay: true, requestTimeout: 0 }, (req, res) => {
  if (!toChain || !fromChain) return reply(res, 503, 'chain not connected\n');
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    chunks.push(c);
    size += c.length;
  });
  req.on('end', () => {
    if (size > MAX_BODY) return reply(res, 413, 'too large\n');
    const reqId = pending.add(res, Date.now() + TIMEOUT_MS);
    if (reqId < 0) return reply(res, 503, 'too many requests pending\n');
    expiry ??= setTimeout(expire, TIMEOUT_MS);
    const at = out.reserve(size);
    let o = at;
    for (const c of chunks) o += c.copy(out.bytes, o);
    out.commit(at, size, reqId);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  });
});
server.keepAliveTimeout = 60_000;

// Requests whose reply never came (only on a broken chain) get 504. The timer runs only while
// requests are pending, so an idle gateway never wakes up (its idle CPU is measured).
let expiry: NodeJS.Timeout | null = null;
const expire = () => {
  expiry = null;
  pending.expire(Date.now(), (res) => reply(res, 504, 'chain timed out\n'));
  if (pending.size) expiry = setTimeout(expire, 1000);
};

const chainListener = net.createServer({ noDelay: true }, (s) => {
  toChain = s;
  s.on('error', () => s.destroy());
});

function connect(port: number): void {
  fromChain = net.connect({
    host: '127.0.0.1',
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
  fromChain.once('connect', () => process.stdout.write('connected\n'));
  fromChain.on('error', (err) => {
    process.stderr.write(`chain: ${err.message}\n`);
    process.exit(1);
  });
}

chainListener.listen(0, '127.0.0.1', () => {
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening ${(server.address() as net.AddressInfo).port} ${(chainListener.address() as net.AddressInfo).port}\n`);
  });
});

exitWithParent(
  () => {
    if (expiry) clearTimeout(expiry);
    server.closeAllConnections();
    server.close();
    chainListener.close();
    fromChain?.destroy();
  },
  (line) => {
    const m = /^connect (\d+)$/.exec(line.trim());
    if (m) connect(Number(m[1]));
  },
);
