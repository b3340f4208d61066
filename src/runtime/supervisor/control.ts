/**
 * The running supervisor's control socket (`<run dir>/<policy>.sock`, mode 0600: root only, like
 * the maps it acts on). One JSON request per connection, one JSON answer: `bpfctl scale` asks the
 * supervisor instead of writing `instances` itself, because only the supervisor knows which
 * processes are alive and it must start or stop them along with the map change.
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { RouteChange } from '../../deploy/routes.ts';
import { BpfctlError } from '../../errors.ts';
import { runDir } from './lock.ts';

export type ControlRequest =
  | { op: 'scale'; function: string; instances: number }
  | { op: 'instances' }
  | { op: 'routes'; changes: RouteChange[] }
  | { op: 'apply'; file: string; restart?: boolean }
  | { op: 'packet' }
  | { op: 'stop' };

export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

export function controlPath(policy: string, dir = runDir()): string {
  return join(dir, `${policy}.sock`);
}

const MAX_REQUEST = 64 * 1024;

/** Serves requests until closed. The caller holds the policy's run lock, so a socket file there is a dead supervisor's. */
export async function serveControl(path: string, handle: ControlHandler): Promise<{ close(): Promise<void> }> {
  if (existsSync(path)) unlinkSync(path);
  const server = net.createServer((conn) => {
    let text = '';
    conn.setEncoding('utf8');
    conn.on('error', () => conn.destroy());
    conn.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > MAX_REQUEST) return void conn.destroy();
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      conn.pause();
      let req: ControlRequest;
      try {
        req = JSON.parse(text.slice(0, nl)) as ControlRequest;
      } catch {
        return void conn.end(`${JSON.stringify({ ok: false, error: { code: 'E_CONTROL', message: 'request is not JSON' } })}\n`);
      }
      handle(req).then(
        (result) => conn.end(`${JSON.stringify({ ok: true, result })}\n`),
        (err: unknown) => {
          const e = err as { code?: string; message?: string };
          conn.end(`${JSON.stringify({ ok: false, error: { code: e.code ?? 'E_CONTROL', message: e.message ?? String(err) } })}\n`);
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // server.close() unlinks the socket file itself; a crash leaves it for the next start.
      }),
  };
}

/**
 * Sends one request to the supervisor running `policy`.
 * @throws BpfctlError E_NOT_RUNNING when no supervisor listens; the supervisor's own error otherwise.
 */
export function askSupervisor(policy: string, req: ControlRequest, dir = runDir(), timeoutMs = 120_000): Promise<unknown> {
  const path = controlPath(policy, dir);
  return new Promise((resolve, reject) => {
    const conn = net.connect(path);
    let text = '';
    conn.setEncoding('utf8');
    conn.setTimeout(timeoutMs, () => conn.destroy(new Error(`the supervisor of ${policy} did not answer within ${timeoutMs} ms`)));
    conn.on('connect', () => conn.write(`${JSON.stringify(req)}\n`));
    conn.on('data', (t: string) => {
      text += t;
    });
    conn.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new BpfctlError('E_NOT_RUNNING', `policy ${policy} is not running under bpfctl run (no ${path})`));
      else reject(err);
    });
    conn.on('end', () => {
      try {
        const ans = JSON.parse(text) as { ok: boolean; result?: unknown; error?: { code: string; message: string } };
        if (ans.ok) resolve(ans.result);
        else reject(new BpfctlError(ans.error?.code ?? 'E_CONTROL', ans.error?.message ?? 'the supervisor refused'));
      } catch {
        reject(new BpfctlError('E_CONTROL', `unreadable answer from the supervisor of ${policy}`));
      }
    });
  });
}
