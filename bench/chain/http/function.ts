/**
 * One function of the HTTP chains: an HTTP server that does its work on the request body and,
 * unless it is the last, POSTs the result to `next port` and answers with what comes back. In
 * http-sidecar that port is the next function's sidecar, in http-direct the next function itself.
 * Usage: `function.ts <work> [next [host:]port]`; prints `listening <port>` (it listens on
 * 127.0.0.1; the next hop is on 127.0.0.1 unless a host is given, as bench/nodes does to reach
 * another namespace). Keep-alive connections throughout: the baselines pay for HTTP, not for TCP
 * handshakes.
 */
import { Buffer } from 'node:buffer';
import http from 'node:http';
import { exitWithParent } from '../proc.ts';
import { STAMP_BYTES, WORK, type WorkName } from '../work.ts';

const [workName, next] = process.argv.slice(2);
const work = WORK[workName as WorkName];
if (!work) {
  process.stderr.write('usage: function.ts <upper|reverse|stamp> [next [host:]port]\n');
  process.exit(2);
}
const nextHost = next?.includes(':') ? next.slice(0, next.lastIndexOf(':')) : '127.0.0.1';
const nextPort = next?.slice(next.lastIndexOf(':') + 1);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

const answer = (res: http.ServerResponse, status: number, body: Buffer) => {
  res.writeHead(status, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
};

const server = http.createServer({ keepAlive: true, noDelay: true, requestTimeout: 0 }, (req, res) => {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    chunks.push(c);
    size += c.length;
  });
  req.on('end', () => {
    const b = Buffer.allocUnsafe(size + STAMP_BYTES);
    let o = 0;
    for (const c of chunks) o += c.copy(b, o);
    const out = b.subarray(0, work(b, 0, size));
    if (!nextPort) return answer(res, 200, out);
    const fwd = http.request(
      { host: nextHost, port: Number(nextPort), path: req.url, method: 'POST', agent, headers: { 'content-type': 'application/octet-stream', 'content-length': out.length } },
      (r) => {
        const got: Buffer[] = [];
        r.on('data', (c: Buffer) => got.push(c));
        r.on('end', () => answer(res, r.statusCode ?? 502, Buffer.concat(got)));
      },
    );
    fwd.on('error', (err) => answer(res, 502, Buffer.from(`${err.message}\n`)));
    fwd.end(out);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`));

exitWithParent(() => {
  server.closeAllConnections();
  server.close();
  agent.destroy();
});
