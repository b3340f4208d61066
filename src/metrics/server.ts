/**
 * The HTTP endpoint Prometheus scrapes: `GET /metrics` answers one scrape of the policy's
 * registry (read at that moment); `/` points there. A scrape that cannot read the pins answers
 * 500 with the one-line reason, so Prometheus records the target as down with it.
 */
import http from 'node:http';
import { type ListenAddress, formatListen } from './address.ts';
import { MetricsError } from './errors.ts';
import type { PolicyMetrics } from './registry.ts';

export interface MetricsServer {
  /** The address actually bound (port 0 picks one). */
  readonly address: ListenAddress;
  readonly url: string;
  close(): Promise<void>;
}

const EXPLAIN: Record<string, string> = {
  EADDRINUSE: 'address in use',
  EADDRNOTAVAIL: 'no such local address',
  EACCES: 'permission denied',
};

/** @throws MetricsError E_METRICS_LISTEN when the address cannot be bound */
export async function serveMetrics(metrics: PolicyMetrics, at: ListenAddress): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET /metrics\n');
      return;
    }
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<a href="/metrics">/metrics</a>\n');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = EXPLAIN[err.code ?? ''] ?? err.message;
      reject(new MetricsError('E_METRICS_LISTEN', `cannot serve metrics on ${formatListen(at)}: ${why}${err.code ? ` (${err.code})` : ''}`, { cause: err }));
    });
    server.listen({ host: at.host, port: at.port, exclusive: true }, () => resolve());
  });
  const bound = server.address() as { address: string; port: number };
  const address = { host: at.host, port: bound.port };
  return {
    address,
    url: `http://${formatListen(address)}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
