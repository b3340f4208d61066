/**
 * Descriptor-level driver for a bpfctl chain (TS or C functions): no HTTP. It registers a chain
 * socket of its own as a gateway instance (function 0, instance `--gw`, a key no gateway of the
 * chain uses, so the chain's HTTP gateway keeps working), keeps `--inflight` pool buffers
 * circulating through the route with hop 0 descriptors, and prints `result <json>`.
 *
 * Usage: loop-bpfctl.ts --info <host's ready json> --pids <chain pids> [--inflight 32]
 *        [--warmup ms] [--measure ms] [--gw 31]
 * Root: it writes the pinned `socks` map (what the supervisor does for its own gateways).
 */
import { Buffer } from 'node:buffer';
import { dirname } from 'node:path';
import { openChainMaps } from '../../../src/deploy/chain-maps.ts';
import { Pool } from '../../../src/runtime/pool/index.ts';
import { Link } from '../../../src/runtime/sdk/link.ts';
import { DESC_FLAG_ERROR, DESC_SIZE, DescRecord, FrameCutter, readDescInto, writeDesc } from '../../../src/runtime/sdk/wire.ts';
import { u32Key } from '../../../src/ir/chain-maps.ts';
import { sockKey } from '../../../src/schema/chain-maps.ts';
import { expected, PAYLOAD } from '../work.ts';
import { args, Loop } from './loop.ts';

const a = args();
const info = JSON.parse(a.info ?? '{}') as { policy: string; poolName: string; hubPort: number; routeId: number; routeLen: number; pinDir: string };
const inflight = Number(a.inflight ?? 32);
const gwInst = Number(a.gw ?? 31);
const chainPids = (a.pids ?? '').split(',').filter(Boolean).map(Number);

const pool = Pool.open(info.poolName);
const maps = openChainMaps(info.policy, dirname(info.pinDir));
const key = u32Key(sockKey(0, gwInst));
const payload = Buffer.from(PAYLOAD);
const want = Buffer.from(expected());

// One pool buffer per slot for the whole run; its payload is written again before every trip
// (the chain transforms it in place). Per slot, made once: its view of the buffer (the gateway
// keeps one per pool buffer too, PoolBuffers) and its descriptor record (the gateway's pending
// table recycles records the same way).
const bufs = Array.from({ length: inflight }, () => {
  const b = pool.alloc(process.pid);
  if (!b) throw new Error('pool exhausted');
  return b;
});
const views = bufs.map((b) => {
  const u = pool.bytes(b.offset, payload.length);
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
});
const records = bufs.map((b) => {
  const d = new DescRecord();
  d.route = info.routeId;
  d.gwInst = gwInst;
  d.bufOff = b.offset;
  d.bufGen = b.gen;
  return d;
});
// The slot is the request id modulo `inflight`: no lookup table on the reply path.
let seq = 1;
// The requests issued since the last flush, written as one batch (the gateway's outgoing batch).
const out: DescRecord[] = [];
let outN = 0;
// Batch buffers the link gave back, by descriptor count (the gateway's `spare`).
const spare: (Buffer | null)[] = new Array<Buffer | null>(inflight + 1).fill(null);
let checked = 0;

let link: Link;
const loop = new Loop({
  cpus: a.cpus,
  inflight,
  warmupMs: Number(a.warmup ?? 1000),
  measureMs: Number(a.measure ?? 5000),
  chainPids,
  issue: (slot) => {
    payload.copy(views[slot]!, 0);
    const d = records[slot]!;
    d.hop = 0;
    d.flags = 0;
    d.status = 0;
    d.reqId = (seq++ * inflight + slot) >>> 0;
    d.bufLen = payload.length;
    out[outN++] = d;
  },
  flush: () => {
    const n = outN;
    if (n === 0) return;
    outN = 0;
    let bytes = spare[n] ?? null;
    if (bytes !== null) spare[n] = null;
    else bytes = Buffer.allocUnsafe(n * DESC_SIZE);
    for (let i = 0; i < n; i++) writeDesc(bytes, i * DESC_SIZE, out[i]!);
    if (link.write(bytes) && link.drained) spare[n] = bytes;
  },
  done: (r) => {
    process.stdout.write(`result ${JSON.stringify(r)}\n`);
    cleanup();
    process.exit(0);
  },
});

// Replies are read into one record, as the gateway reads them.
const reply = new DescRecord();
const reader = new FrameCutter((b, at) => {
  readDescInto(b, at, reply);
  const d = reply;
  const slot = d.reqId % inflight;
  let ok = !(d.flags & DESC_FLAG_ERROR) && d.hop === info.routeLen && d.bufLen === want.length;
  // Checking every answer would cost the driver more than a hop: the first ones and a sample.
  if (ok && (checked < 1000 || (d.reqId & 1023) === 0)) {
    checked++;
    ok = Buffer.compare(Buffer.from(pool.bytes(d.bufOff, d.bufLen)), want) === 0;
  }
  loop.reply(slot, ok);
});

link = new Link({
  mode: 'callback',
  hubPort: info.hubPort,
  register: (fd) => maps.socks.updateFd(key, fd),
  onData: (buf, len) => {
    reader.push(buf, len);
    loop.afterRead();
  },
  onUp: () => loop.start(),
  onDown: (err) => {
    process.stderr.write(`driver: chain socket down: ${err?.message ?? 'closed'}\n`);
    cleanup();
    process.exit(1);
  },
  onFatal: () => {},
  log: (m) => process.stderr.write(`driver: ${m}\n`),
});

function cleanup(): void {
  try {
    maps.socks.delete(key);
  } catch {}
  link.close();
  for (const b of bufs) {
    try {
      pool.free(b);
    } catch {}
  }
  maps.close();
  pool.close();
}

link.start();
