/**
 * The README's demo: a few requests to every route of a running chain, each answer shown next to
 * what was sent. The policy format has no example bodies, so the demo sends fixed ones.
 */
import http from 'node:http';
import type { Chain } from './chain.ts';

export const DEMO_BODIES = ['hello from bpfctl', 'functions chained by sk_msg'];

export interface DemoResult {
  route: string;
  url: string;
  request: string;
  status: number;
  response: string;
  ms: number;
}

/** POSTs `body` to `url`; one connection per request, so nothing lingers after the demo. */
export function post(url: string, body: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: false, headers: { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export async function runDemo(chain: Pick<Chain, 'routes'>, bodies: readonly string[] = DEMO_BODIES): Promise<DemoResult[]> {
  const out: DemoResult[] = [];
  for (const r of chain.routes) {
    for (const body of bodies) {
      const t0 = performance.now();
      const res = await post(r.url, body);
      out.push({ route: r.name, url: r.url, request: body, status: res.status, response: res.body.replace(/\n$/, ''), ms: Math.round((performance.now() - t0) * 10) / 10 });
    }
  }
  return out;
}
