/** `--listen` / `--metrics` addresses: `HOST:PORT`, `[V6]:PORT`, or `:PORT` (127.0.0.1). */
import { MetricsError } from './errors.ts';

/** 9464: the port the Prometheus wiki lists for OpenTelemetry-style exporters' metrics. */
export const DEFAULT_LISTEN = '127.0.0.1:9464';

export interface ListenAddress {
  host: string;
  port: number;
}

/** @throws MetricsError E_METRICS_ADDRESS naming the bad text */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw new MetricsError('E_METRICS_ADDRESS', `metrics address '${text}' is not HOST:PORT (e.g. 127.0.0.1:9464, [::1]:9464, :9464)`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export function formatListen(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
