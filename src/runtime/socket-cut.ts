/** Ending a TCP connection so that it surely ends: see cut(). */
import type net from 'node:net';

/**
 * Resets a connection, or destroys it when it is ending already. Node's reset of a socket that is
 * shutting down (after the peer's FIN, Node ends its side too) fails with EINVAL, and Node then
 * emits 'error' and never 'close' (net.Socket#_destroy): a peer whose agent died was seen silent
 * every 200 ms and never down (a CI run). An ending socket is destroyed instead; should a reset
 * still fail, its handle is closed and 'close' emitted here, since Node does neither.
 */
export function cut(sock: net.Socket | null | undefined): void {
  if (!sock || sock.destroyed) return;
  if (sock.connecting || sock.readableEnded || sock.writableEnded) return void sock.destroy();
  // Node drops its reference to the handle after a failed reset without closing it: the
  // descriptor stays open, and the process's exit then waits for that handle forever (seen: an
  // agent spinning in Environment::CleanupHandles after its stop). Closed here, then 'close'.
  const handle = (sock as unknown as { _handle?: { close?(cb: () => void): void } | null })._handle;
  const onError = (err: NodeJS.ErrnoException) => {
    if (err.syscall !== 'reset') return;
    try {
      handle?.close?.(() => {});
    } catch {
      // closing already
    }
    sock.emit('close', true);
  };
  sock.once('error', onError);
  sock.resetAndDestroy();
  sock.off('error', onError);
}
