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
import { DESC_FLAG_ERROR, DESC_SIZE, type Desc, FrameReader, writeDesc } from '../../../src/runtime/sdk/wire.ts';
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
// (the chain transforms it in place).
const bufs = Array.from({ length: inflight }, () => {
  const b = pool.alloc(process.pid);
  if (!b) throw new Error('pool exhausted');
  return b;
});
// The slot is the request id modulo `inflight`: no lookup table on the reply path.
let seq = 1;
let queue: Desc[] = [];
let checked = 0;

let link: Link;
const loop = new Loop({
  inflight,
  warmupMs: Number(a.warmup ?? 1000),
  measureMs: Number(a.measure ?? 5000),
  chainPids,
  issue: (slot) => {
    const b = bufs[slot]!;
    pool.bytes(b.offset, payload.length).set(payload);
    const reqId = (seq++ * inflight + slot) >>> 0;
    queue.push({ route: info.routeId, hop: 0, flags: 0, gwInst, status: 0, reqId, bufOff: b.offset, bufLen: payload.length, bufGen: b.gen });
  },
  flush: () => {
    if (!queue.length) return;
    const out = Buffer.allocUnsafe(queue.length * DESC_SIZE);
    for (let i = 0; i < queue.length; i++) writeDesc(out, i * DESC_SIZE, queue[i]!);
    queue = [];
    link.write(out);
  },
  done: (r) => {
    process.stdout.write(`result ${JSON.stringify(r)}\n`);
    cleanup();
    process.exit(0);
  },
});

const reader = new FrameReader((d) => {
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
