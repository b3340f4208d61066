/**
 * The sidecar in front of each function of the Knative-style chain (Knative's queue-proxy, an
 * Envoy in a service mesh): a reverse proxy process that forwards every request to its function
 * and streams the answer back. Usage: `sidecar.ts <function port> [listen host]` (default
 * 127.0.0.1; bench/nodes gives 0.0.0.0 so other namespaces reach it); prints `listening <port>`.
 * A minimal one: no metrics, no concurrency limits, so the baseline errs on the fast side.
 */
import http from 'node:http';
import { exitWithParent } from '../proc.ts';

const target = Number(process.argv[2]);
const listenHost = process.argv[3] ?? '127.0.0.1';
if (!target) {
  process.stderr.write('usage: sidecar.ts <function port>\n');
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

const server = http.createServer({ keepAlive: true, noDelay: true, requestTimeout: 0 }, (req, res) => {
  const fwd = http.request({ host: '127.0.0.1', port: target, path: req.url, method: req.method, headers: req.headers, agent }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  fwd.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`${err.message}\n`);
  });
  req.pipe(fwd);
});
server.keepAliveTimeout = 60_000;
server.listen(0, listenHost, () => process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`));

exitWithParent(() => {
  server.closeAllConnections();
  server.close();
  agent.destroy();
});
