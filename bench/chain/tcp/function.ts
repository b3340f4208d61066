/**
 * One function of the plain-TCP chain. Usage: `function.ts <upper|reverse|stamp> <upstream port>`.
 * It listens (for its downstream hop), prints `listening <port>`, then connects to the listener of
 * its upstream hop and reads frames from that connection; each frame gets the work and goes out
 * on the connection the downstream hop opened. Every hop is thus a TCP connection through the
 * loopback stack, with the payload in it.
 *
 * Reads land through `onread` in one reused buffer (why each hop connects *upstream*: only a
 * connecting socket takes `onread`), and everything one read produced leaves in one write: the
 * same care the bpfctl runtime's chain socket gets, so the baseline is not handicapped.
 * With a third argument `unbatched`, each frame is written on its own instead, the way a naive
 * Node program does it (the bench shows that baseline for reference only).
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { exitWithParent } from '../proc.ts';
import { STAMP_BYTES, WORK, type WorkName } from '../work.ts';
import { FrameBatch, FrameSplitter } from './framing.ts';

const [workName, upstreamPort, mode] = process.argv.slice(2);
const unbatched = mode === 'unbatched';
const work = WORK[workName as WorkName];
if (!work || !Number(upstreamPort)) {
  process.stderr.write('usage: function.ts <upper|reverse|stamp> <upstream port>\n');
  process.exit(2);
}

let downstream: net.Socket | null = null;
const out = new FrameBatch();
const splitter = new FrameSplitter((buf, off, len, reqId) => {
  const at = out.reserve(len + STAMP_BYTES);
  const b = out.bytes;
  buf.copy(b, at, off, off + len);
  out.commit(at, work(b, at, len), reqId);
  if (unbatched) {
    const one = out.take();
    if (one) downstream?.write(one);
  }
});

const server = net.createServer({ noDelay: true }, (s) => {
  downstream = s;
  s.on('error', () => s.destroy());
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`);
  const up = net.connect({
    host: '127.0.0.1',
    port: Number(upstreamPort),
    noDelay: true,
    onread: {
      buffer: Buffer.allocUnsafe(64 * 1024),
      callback: (n: number, buf: Uint8Array) => {
        splitter.push(buf as Buffer, n);
        const batch = out.take();
        if (batch) downstream?.write(batch);
        return true;
      },
    },
  } as net.TcpNetConnectOpts);
  up.on('error', (err) => {
    process.stderr.write(`upstream: ${err.message}\n`);
    process.exit(1);
  });
});

exitWithParent(() => {
  server.close();
  downstream?.destroy();
});
