/**
 * The packet plane's layout is one contract in two languages: compile a tiny C program against
 * bpf/include/bpfctl/packet_layout.h that prints every offset, size and constant, and compare each
 * with src/schema/packet-layout.ts (what the supervisor, status and top read and write).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as L from '../../src/schema/packet-layout.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const fields: Record<string, [string, string[]]> = {
  desc: ['bpfctl_pkt_desc', ['addr', 'gen', 'len', 'hash', 'chain', 'hop', 'port', 'flags']],
  hdr: ['bpfctl_plane_hdr', ['magic', 'version', 'ring_slots', 'ring_count', 'ring_off', 'ring_stride', 'nchains', 'nfns', 'nports', 'pktio_pid', 'flags', 'unattributed_lost']],
  chain: ['bpfctl_chain_entry', ['nhops', 'egress_kind', 'egress_port', 'flags', 'hops', 'name']],
  fn: ['bpfctl_fn_entry', ['seq', 'nlive', 'flags', 'name', 'live_ring', 'inst_pid', 'inst_state']],
  port: ['bpfctl_port_entry', ['ifindex', 'nqueues', 'flags', 'ifname', 'rx', 'tx', 'tx_fail', 'rx_dropped', 'rx_fill_empty', 'posted', 'no_chain', 'rx_ring_full', 'lost']],
  inst: ['bpfctl_inst_counters', ['rx', 'passed', 'dropped', 'lost', 'batches', 'wakeups', 'reclaimed']],
  chainStats: ['bpfctl_chain_counters', ['in', 'out', 'dropped', 'lost']],
  ring: ['bpfctl_ring_hdr', ['tail', 'head', 'waiting', 'wake', 'consumer_pid']],
  slot: ['bpfctl_ring_slot', ['seq', 'desc']],
};

const constants = [
  'BPFCTL_PLANE_MAGIC',
  'BPFCTL_PLANE_VERSION',
  'BPFCTL_PKT_MAX_CHAINS',
  'BPFCTL_PKT_MAX_HOPS',
  'BPFCTL_PKT_MAX_FNS',
  'BPFCTL_PKT_MAX_INST',
  'BPFCTL_PKT_MAX_PORTS',
  'BPFCTL_PKT_NAME_LEN',
  'BPFCTL_PKT_IFNAME_LEN',
  'BPFCTL_PLANE_CHAINS_OFF',
  'BPFCTL_PLANE_FNS_OFF',
  'BPFCTL_PLANE_PORTS_OFF',
  'BPFCTL_PLANE_INST_STATS_OFF',
  'BPFCTL_PLANE_CHAIN_STATS_OFF',
  'BPFCTL_PLANE_RINGS_OFF',
  'BPFCTL_PKT_META_TAG',
  'BPFCTL_PKT_RING_OWNER',
  'BPFCTL_PKT_EGRESS_DROP',
  'BPFCTL_PKT_EGRESS_TX',
  'BPFCTL_PKT_CHAIN_POLL',
  'BPFCTL_PKT_PORT_BOUND',
  'BPFCTL_PKT_PORT_ZEROCOPY',
  'BPFCTL_PKT_INST_EMPTY',
  'BPFCTL_PKT_INST_STARTING',
  'BPFCTL_PKT_INST_LIVE',
  'BPFCTL_PKT_INST_DRAINING',
  'BPFCTL_PKT_INST_RESTARTING',
];

function program(): string {
  const lines = ['#include <bpfctl/packet_layout.h>', '#include <stdio.h>', 'int main(void) {', 'printf("{");'];
  for (const [key, [struct, names]] of Object.entries(fields)) {
    lines.push(`printf("\\"${key}\\":{");`);
    for (const n of names) lines.push(`printf("\\"${n}\\":%zu,", offsetof(struct ${struct}, ${n}));`);
    lines.push(`printf("\\"sizeof\\":%zu},", sizeof(struct ${struct}));`);
  }
  for (const c of constants) lines.push(`printf("\\"${c}\\":%u,", (unsigned)(${c}));`);
  lines.push('printf("\\"ring_of_3_5\\":%u}\\n", BPFCTL_PKT_RING_OF(3, 5));', 'return 0;', '}');
  return lines.join('\n');
}

test('packet_layout.h and packet-layout.ts agree on every offset, size and constant', () => {
  const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-packet-layout-`));
  try {
    writeFileSync(join(dir, 'layout.c'), program());
    execFileSync('cc', ['-std=c11', '-Wall', '-Werror', '-I', join(ROOT, 'bpf/include'), '-o', join(dir, 'layout'), join(dir, 'layout.c')], { stdio: 'pipe' });
    const c = JSON.parse(execFileSync(join(dir, 'layout'), { encoding: 'utf8' }));
    assert.equal(c.desc, { ...L.DESC, sizeof: L.DESC_SIZE });
    assert.equal(c.hdr, {
      magic: L.HDR.magic,
      version: L.HDR.version,
      ring_slots: L.HDR.ringSlots,
      ring_count: L.HDR.ringCount,
      ring_off: L.HDR.ringOff,
      ring_stride: L.HDR.ringStride,
      nchains: L.HDR.nchains,
      nfns: L.HDR.nfns,
      nports: L.HDR.nports,
      pktio_pid: L.HDR.pktioPid,
      flags: L.HDR.flags,
      unattributed_lost: L.HDR.unattributedLost,
      sizeof: L.HEADER_SIZE,
    });
    assert.equal(c.chain, { nhops: L.CHAIN.nhops, egress_kind: L.CHAIN.egressKind, egress_port: L.CHAIN.egressPort, flags: L.CHAIN.flags, hops: L.CHAIN.hops, name: L.CHAIN.name, sizeof: L.CHAIN_SIZE });
    assert.equal(c.fn, { seq: L.FN.seq, nlive: L.FN.nlive, flags: L.FN.flags, name: L.FN.name, live_ring: L.FN.liveRing, inst_pid: L.FN.instPid, inst_state: L.FN.instState, sizeof: L.FN_SIZE });
    assert.equal(c.port, {
      ifindex: L.PORT.ifindex,
      nqueues: L.PORT.nqueues,
      flags: L.PORT.flags,
      ifname: L.PORT.ifname,
      rx: L.PORT.rx,
      tx: L.PORT.tx,
      tx_fail: L.PORT.txFail,
      rx_dropped: L.PORT.rxDropped,
      rx_fill_empty: L.PORT.rxFillEmpty,
      posted: L.PORT.posted,
      no_chain: L.PORT.noChain,
      rx_ring_full: L.PORT.rxRingFull,
      lost: L.PORT.lost,
      sizeof: L.PORT_SIZE,
    });
    assert.equal(c.inst, { ...L.INST_STATS, sizeof: L.INST_STATS_SIZE });
    assert.equal(c.chainStats, { ...L.CHAIN_STATS, sizeof: L.CHAIN_STATS_SIZE });
    assert.equal(c.ring, { tail: L.RING.tail, head: L.RING.head, waiting: L.RING.waiting, wake: L.RING.wake, consumer_pid: L.RING.consumerPid, sizeof: L.RING_HEADER });
    assert.equal(c.slot, { seq: L.SLOT.seq, desc: L.SLOT.desc, sizeof: L.SLOT_SIZE });
    assert.equal(
      constants.map((k) => c[k]),
      [
        L.MAGIC,
        L.VERSION,
        L.MAX_CHAINS,
        L.MAX_HOPS,
        L.MAX_FNS,
        L.MAX_INST,
        L.MAX_PORTS,
        L.NAME_LEN,
        L.IFNAME_LEN,
        L.CHAINS_OFF,
        L.FNS_OFF,
        L.PORTS_OFF,
        L.INST_STATS_OFF,
        L.CHAIN_STATS_OFF,
        L.RINGS_OFF,
        L.META_TAG,
        L.RING_OWNER,
        L.EGRESS_DROP,
        L.EGRESS_TX,
        L.CHAIN_POLL,
        L.PORT_BOUND,
        L.PORT_ZEROCOPY,
        L.INST_STATE.empty,
        L.INST_STATE.starting,
        L.INST_STATE.live,
        L.INST_STATE.draining,
        L.INST_STATE.restarting,
      ],
    );
    assert.is(c.ring_of_3_5, L.ringOf(3, 5));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
