/**
 * cut(): a connection the node-link gives up on always ends in 'close', which is what takes a
 * peer down. Node's reset can fail (EINVAL while the socket shuts down after the peer's FIN), and
 * Node then emits 'error' and no 'close'; here the failure is forced by making the handle's reset
 * fail, as libuv does in that state.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cut } from '../../src/runtime/socket-cut.ts';

const UV_EINVAL = -22;

async function pair(): Promise<{ client: net.Socket; server: net.Server; accepted: Promise<net.Socket> }> {
  let took: (s: net.Socket) => void = () => {};
  const accepted = new Promise<net.Socket>((r) => (took = r));
  const server = net.createServer((s) => {
    s.on('error', () => {});
    took(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  await new Promise((r) => client.once('connect', r));
  return { client, server, accepted };
}

const closes = (s: net.Socket, ms = 1000) =>
  new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });

test('a reset that fails still ends in close (plain resetAndDestroy does not: the case cut exists for)', async () => {
  for (const viaCut of [false, true]) {
    const { client, server, accepted } = await pair();
    const handle = (client as unknown as { _handle: { fd: number; reset(cb: () => void): number } })._handle;
    const fd = handle.fd;
    handle.reset = () => UV_EINVAL;
    const closed = closes(client);
    if (viaCut) cut(client);
    else client.resetAndDestroy();
    assert.is(await closed, viaCut, viaCut ? 'cut: closed' : 'Node alone: no close event');
    if (viaCut) assert.not.ok(existsSync(`/proc/self/fd/${fd}`), 'and its descriptor is closed');
    else (handle as unknown as { close(): void }).close(); // what cut does, so this process can exit
    (await accepted).destroy();
    server.close();
  }
});

// The exit of a process whose reset failed: Node waits for the unclosed handle forever (an agent
// was found spinning at exit in a CI run). With cut, it exits.
const EXITER = `import net from 'node:net';
import { cut } from '${fileURLToPath(new URL('../../src/runtime/socket-cut.ts', import.meta.url))}';
const srv = net.createServer((s) => s.on('error', () => {})).listen(0, '127.0.0.1', () => {
  const c = net.connect(srv.address().port, '127.0.0.1');
  c.on('error', () => {});
  c.once('connect', () => {
    c._handle.reset = () => -22;
    if (process.argv[1] === 'cut') cut(c); else c.resetAndDestroy();
    srv.close();
  });
});`;

test('a process whose reset failed still exits when cut ended the socket (and does not without)', async () => {
  const run = (how: string) =>
    new Promise<boolean>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', EXITER, how], { stdio: 'ignore' });
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(false);
      }, 3000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  assert.is(await run('cut'), true, 'with cut: exits');
  assert.is(await run('reset'), false, 'plain resetAndDestroy: hangs at exit');
});

test('a socket whose peer has ended is destroyed, not reset, and closes', async () => {
  const { client, server, accepted } = await pair();
  const ended = new Promise((r) => client.once('end', r));
  (await accepted).end();
  await ended;
  const handle = (client as unknown as { _handle: { reset(cb: () => void): number } | null })._handle;
  if (handle) handle.reset = () => UV_EINVAL; // a reset now would fail: cut must not try one
  const closed = closes(client);
  cut(client);
  assert.ok(await closed);
  server.close();
});

test('cutting a socket twice, or one already closed, is harmless', async () => {
  const { client, server, accepted } = await pair();
  const closed = closes(client);
  cut(client);
  cut(client);
  assert.ok(await closed);
  cut(client);
  (await accepted).destroy();
  server.close();
});

test.run();
