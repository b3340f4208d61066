/**
 * The far end of the plain TCP hop (policy/functions/reverse-tcp.ts): on node b, it reads the
 * chain bench's frames (../chain/tcp/framing.ts), does the reverse work on each and sends it back
 * on the same connection, everything one read produced in one write (the tcp variant's care).
 * Usage: `tcp-hop-server.ts <host>`; prints `listening <port>`; leaves when the bench does.
 */
import type { Buffer } from 'node:buffer';
import net from 'node:net';
import { exitWithParent } from '../chain/proc.ts';
import { FrameBatch, FrameSplitter } from '../chain/tcp/framing.ts';
import { reverse } from '../chain/work.ts';

const host = process.argv[2];
if (!host) {
  process.stderr.write('usage: tcp-hop-server.ts <listen host>\n');
  process.exit(2);
}

const conns = new Set<net.Socket>();
const server = net.createServer({ noDelay: true }, (s) => {
  conns.add(s);
  const out = new FrameBatch();
  const splitter = new FrameSplitter((buf, off, len, reqId) => {
    const at = out.reserve(len);
    buf.copy(out.bytes, at, off, off + len);
    out.commit(at, reverse(out.bytes, at, len), reqId);
  });
  s.on('data', (c: Buffer) => {
    splitter.push(c, c.length);
    const b = out.take();
    if (b) s.write(b);
  });
  s.on('error', () => s.destroy());
  s.on('close', () => conns.delete(s));
});
server.listen(0, host, () => process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`));

exitWithParent(() => {
  for (const s of conns) s.destroy();
  server.close();
});
