/**
 * The packet plane from TypeScript: a pool made with room for it, its tables as the supervisor
 * writes them, the live-instance seqlock, and draining a ring the way a dead instance's
 * replacement would not (freeing every queued frame back to the pool).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PacketPlane } from '../../src/runtime/packet/plane.ts';
import { Pool } from '../../src/runtime/pool/index.ts';
import * as L from '../../src/schema/packet-layout.ts';

const SPEC = {
  functions: [{ name: 'nat' }, { name: 'count' }],
  chains: [
    { name: 'tenant-nat', functions: [0, 1], egress: { kind: 'tx' as const, port: 1 }, poll: false },
    { name: 'sink', functions: [], egress: { kind: 'drop' as const }, poll: true },
  ],
  ports: [
    { interface: 'veth-in', ifindex: 7 },
    { interface: 'veth-out', ifindex: 9 },
  ],
};

function withPool(fn: (pool: Pool) => void): void {
  const pool = Pool.create({ name: `plane-test-${process.pid}`, bufferSize: 2048, bufferCount: 64, backing: 'shm', extSize: PacketPlane.sizeFor(SPEC.functions.length) });
  try {
    fn(pool);
  } finally {
    pool.close();
    Pool.remove(pool.path);
  }
}

test('the plane sits between metadata and buffers, and buffers do not overlap it', () => {
  withPool((pool) => {
    assert.ok(pool.extOffset > 0 && pool.extOffset % 4096 === 0);
    assert.ok(pool.dataOffset >= pool.extOffset + pool.extSize, 'buffers after the plane');
    assert.is(pool.dataOffset % 4096, 0);
    const again = Pool.open(pool.path);
    try {
      assert.is(again.extOffset, pool.extOffset);
      assert.is(again.extSize, pool.extSize);
    } finally {
      again.close();
    }
  });
});

test('init writes the tables a reader finds again; open refuses a pool without a plane', () => {
  withPool((pool) => {
    PacketPlane.init(pool, SPEC);
    const snap = PacketPlane.open(pool).snapshot();
    assert.equal(
      snap.ports.map((p) => [p.interface, p.ifindex, p.bound]),
      [
        ['veth-in', 7, false],
        ['veth-out', 9, false],
      ],
    );
    assert.equal(
      snap.chains.map((c) => c.name),
      ['tenant-nat', 'sink'],
    );
    assert.equal(
      snap.functions.map((f) => [f.name, f.live]),
      [
        ['nat', []],
        ['count', []],
      ],
    );
    const u8 = new Uint8Array(pool.mapping(), pool.extOffset);
    const c0 = L.CHAINS_OFF;
    assert.equal([u8[c0 + L.CHAIN.nhops], u8[c0 + L.CHAIN.egressKind], u8[c0 + L.CHAIN.egressPort], u8[c0 + L.CHAIN.hops], u8[c0 + L.CHAIN.hops + 1]], [2, L.EGRESS_TX, 1, 0, 1]);
    assert.is(u8[L.CHAINS_OFF + L.CHAIN_SIZE + L.CHAIN.flags], L.CHAIN_POLL);
  });
  const bare = Pool.create({ name: `plane-bare-${process.pid}`, bufferSize: 2048, bufferCount: 8, backing: 'shm' });
  try {
    assert.throws(() => PacketPlane.open(bare), /no packet plane/);
  } finally {
    bare.close();
    Pool.remove(bare.path);
  }
});

test('setLive publishes ring numbers under an even seqlock', () => {
  withPool((pool) => {
    const plane = PacketPlane.init(pool, SPEC);
    plane.setLive(1, [0, 2, 5]);
    const u32 = new Uint32Array(pool.mapping(), pool.extOffset);
    const u16 = new Uint16Array(pool.mapping(), pool.extOffset);
    const f1 = L.FNS_OFF + L.FN_SIZE;
    assert.is(u32[(f1 + L.FN.seq) / 4]! % 2, 0);
    assert.is(u32[(f1 + L.FN.seq) / 4], 2, 'one write: seq moved by two');
    assert.is(u32[(f1 + L.FN.nlive) / 4], 3);
    assert.equal([u16[(f1 + L.FN.liveRing) / 2], u16[(f1 + L.FN.liveRing) / 2 + 1], u16[(f1 + L.FN.liveRing) / 2 + 2]], [L.ringOf(1, 0), L.ringOf(1, 2), L.ringOf(1, 5)]);
    assert.equal(plane.snapshot().functions[1]!.live, [0, 2, 5]);
  });
});

test('drainRing frees every published frame in order and stops at the first unpublished slot', () => {
  withPool((pool) => {
    const plane = PacketPlane.init(pool, SPEC);
    const ring = L.ringOf(0, 0);
    const rOff = pool.extOffset + L.RINGS_OFF + ring * L.ringStride(plane.slots);
    const u64 = new BigUint64Array(pool.mapping());
    const u32 = new Uint32Array(pool.mapping());
    const u16 = new Uint16Array(pool.mapping());
    const refs = [pool.alloc(L.RING_OWNER | ring)!, pool.alloc(L.RING_OWNER | ring)!, pool.alloc(L.RING_OWNER | ring)!];
    // A producer claimed three slots and published the first two; the third is still being written.
    refs.forEach((ref, i) => {
      const slot = rOff + L.RING_HEADER + i * L.SLOT_SIZE;
      u32[(slot + L.SLOT.desc + L.DESC.addr) / 4] = ref.offset + 256;
      u32[(slot + L.SLOT.desc + L.DESC.gen) / 4] = ref.gen;
      u16[(slot + L.SLOT.desc + L.DESC.len) / 2] = 60;
      if (i < 2) u64[(slot + L.SLOT.seq) / 8] = BigInt(i + 1);
    });
    u64[(rOff + L.RING.tail) / 8] = 3n;
    assert.is(plane.queued(ring), 3);
    assert.is(pool.stats().inUse, 3);
    assert.is(plane.drainRing(ring), 2);
    assert.is(pool.stats().inUse, 1, 'the unpublished one stays');
    assert.is(plane.queued(ring), 1);
    assert.is(u64[(rOff + L.RING_HEADER) / 8], BigInt(plane.slots), 'a consumed slot is marked free for the next lap');
    assert.is(plane.bufferOf(refs[2]!.offset + 256), refs[2]!.offset);
    // reclaimDead must not take queued frames: their owner is a ring, not a dead pid.
    assert.is(pool.reclaimDead(), 0);
  });
});

test('a hole a dead producer left (claimed, never published) is found and filled; published slots are not', () => {
  withPool((pool) => {
    const plane = PacketPlane.init(pool, SPEC);
    const ring = L.ringOf(1, 0);
    const rOff = pool.extOffset + L.RINGS_OFF + ring * L.ringStride(plane.slots);
    const u64 = new BigUint64Array(pool.mapping());
    const u8 = new Uint8Array(pool.mapping());
    // Positions 0..2 claimed; 1 published by a live producer, 0 and 2 never (their producer died).
    u64[(rOff + L.RING.tail) / 8] = 3n;
    u64[(rOff + L.RING_HEADER + 1 * L.SLOT_SIZE) / 8] = 2n;
    assert.equal(plane.holes(ring), [0n, 2n]);
    assert.equal(plane.holes(0), [], 'an idle ring has none');
    assert.is(plane.fillHoles(ring, [0n, 2n]), 2);
    assert.equal(plane.holes(ring), []);
    assert.is(u64[(rOff + L.RING_HEADER) / 8], 1n, 'published for the consumer');
    assert.is(u8[rOff + L.RING_HEADER + L.SLOT.desc + L.DESC.chain], 0xff, 'as an empty descriptor');
    assert.is(plane.fillHoles(ring, [1n]), 0, 'a published slot is left alone');
  });
});

test.run();
