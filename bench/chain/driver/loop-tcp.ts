/**
 * Descriptor-level driver for the plain-TCP chain, standing where its gateway stands: it
 * listens for the first function, prints `listening <port>`, and once told `connect <port> <pids>`
 * on stdin (the last function's listener, the chain's processes) keeps `--inflight` frames of the
 * bench payload circulating, then prints `result <json>`. The same loop as loop-bpfctl.ts, with
 * the payload in the frames instead of in a pool buffer.
 *
 * Usage: loop-tcp.ts [--inflight 32] [--warmup ms] [--measure ms]
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { exitWithParent } from '../proc.ts';
import { FrameBatch, FrameSplitter } from '../tcp/framing.ts';
import { expected, PAYLOAD } from '../work.ts';
import { args, Loop } from './loop.ts';

const a = args();
const inflight = Number(a.inflight ?? 32);
const payload = Buffer.from(PAYLOAD);
const want = Buffer.from(expected());
const out = new FrameBatch();
let toChain: net.Socket | null = null;
let seq = 1;
let checked = 0;

function run(lastPort: number, chainPids: number[]): void {
  const loop = new Loop({
    cpus: a.cpus,
    inflight,
    warmupMs: Number(a.warmup ?? 1000),
    measureMs: Number(a.measure ?? 5000),
    chainPids,
    issue: (slot) => {
      const at = out.reserve(payload.length);
      payload.copy(out.bytes, at);
      // The slot is the request id modulo `inflight`: no lookup table on the reply path.
      out.commit(at, payload.length, (seq++ * inflight + slot) >>> 0);
    },
    flush: () => {
      const batch = out.take();
      if (batch) toChain?.write(batch);
    },
    done: (r) => {
      process.stdout.write(`result ${JSON.stringify(r)}\n`);
      process.exit(0);
    },
  });
  const splitter = new FrameSplitter((buf, off, len, reqId) => {
    let ok = len === want.length;
    // Checking every answer would cost the driver more than a hop: the first ones and a sample.
    if (ok && (checked < 1000 || (reqId & 1023) === 0)) {
      checked++;
      ok = buf.compare(want, 0, want.length, off, off + len) === 0;
    }
    loop.reply(reqId % inflight, ok);
  });
  const from = net.connect({
    host: '127.0.0.1',
    port: lastPort,
    noDelay: true,
    onread: {
      buffer: Buffer.allocUnsafe(64 * 1024),
      callback: (n: number, buf: Uint8Array) => {
        splitter.push(buf as Buffer, n);
        loop.afterRead();
        return true;
      },
    },
  } as net.TcpNetConnectOpts);
  from.once('connect', () => loop.start());
  from.on('error', (err) => {
    process.stderr.write(`driver: ${err.message}\n`);
    process.exit(1);
  });
}

const listener = net.createServer({ noDelay: true }, (s) => {
  toChain = s;
  s.on('error', () => s.destroy());
});
listener.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${(listener.address() as net.AddressInfo).port}\n`));

exitWithParent(
  () => {
    listener.close();
    toChain?.destroy();
  },
  (line) => {
    const m = /^connect (\d+) ([\d,]*)$/.exec(line.trim());
    if (m) run(Number(m[1]), m[2]!.split(',').filter(Boolean).map(Number));
  },
);
