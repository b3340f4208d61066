/** Ending a TCP connection so that it surely ends: see cut(). */
import type net from 'node:net';

/**
 * Resets a connection, or destroys it when it is ending already. Node's reset of a socket that is
 * shutting down (after the peer's FIN, Node ends its side too) fails with EINVAL, and Node then
 * emits 'error' and never 'close' (net.Socket#_destroy): a peer whose agent died was seen silent
 * every 200 ms and never down (a CI run). An ending socket is destroyed instead; should a reset
 * still fail, 'close' is emitted here, since Node will not.
 */
export function cut(sock: net.Socket): void {
  if (sock.destroyed) return;
  if (sock.connecting || sock.readableEnded || sock.writableEnded) return void sock.destroy();
  const onError = (err: NodeJS.ErrnoException) => {
    if (err.syscall === 'reset') sock.emit('close', true);
  };
  sock.once('error', onError);
  sock.resetAndDestroy();
  sock.off('error', onError);
}
