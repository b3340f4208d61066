/**
 * The TypeScript packet SDK's incremental checksum updates (src/runtime/packet-ts/checksum.ts)
 * against full recomputation, on random headers and random field changes (fast-check): what a
 * NAT written in TypeScript relies on to leave checksums right. The C twins are checked the same
 * way in packet-sdk.test.ts; here the reference is an independent full sum.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { csumReplace16, csumReplace32, internetChecksum, udpCsumReplace16, udpCsumReplace32 } from '../../src/runtime/packet-ts/checksum.ts';

const rd16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const wr16 = (b: Uint8Array, at: number, v: number) => {
  b[at] = v >>> 8;
  b[at + 1] = v & 0xff;
};

/** A 20-byte "header" with its checksum at 10..11 set by a full sum. */
function withChecksum(bytes: number[]): Uint8Array {
  const h = Uint8Array.from(bytes);
  wr16(h, 10, 0);
  wr16(h, 10, internetChecksum(h));
  return h;
}

const header = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 20, maxLength: 20 });
// Word indexes other than the checksum's (word 5 = bytes 10..11).
const word = fc.integer({ min: 0, max: 9 }).filter((w) => w !== 5);

test('internetChecksum: a header with its checksum in place sums to 0; known vector (RFC 1071 example)', () => {
  const h = withChecksum([0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7]);
  assert.is(rd16(h, 10), 0xb861, 'the checksum of the well-known 192.168.0.1 -> .199 header');
  assert.is(internetChecksum(h), 0);
  // An odd length pads with a zero byte.
  assert.is(internetChecksum(Uint8Array.of(0x12, 0x34, 0x56)), ~(0x1234 + 0x5600) & 0xffff);
});

test('csumReplace16 of any 16-bit field equals recomputing the whole sum', () => {
  fc.assert(
    fc.property(header, word, fc.integer({ min: 0, max: 0xffff }), (bytes, w, to) => {
      const h = withChecksum(bytes);
      const from = rd16(h, w * 2);
      wr16(h, w * 2, to);
      csumReplace16(h, 10, from, to);
      const got = rd16(h, 10);
      wr16(h, 10, 0);
      const want = internetChecksum(h);
      // 0x0000 and 0xffff are the same ones' complement value; a full sum of non-zero data never
      // gives 0xffff, and RFC 1624's equation never gives 0x0000 for it either.
      return got === want || (got === 0xffff && want === 0) || (got === 0 && want === 0xffff);
    }),
    { numRuns: 20000 },
  );
});

test('csumReplace32 of an aligned 32-bit field (an address) equals recomputing', () => {
  fc.assert(
    fc.property(header, fc.constantFrom(12, 16), fc.integer({ min: 0, max: 0xffffffff }), (bytes, at, to) => {
      const h = withChecksum(bytes);
      const from = ((rd16(h, at) << 16) | rd16(h, at + 2)) >>> 0;
      wr16(h, at, to >>> 16);
      wr16(h, at + 2, to & 0xffff);
      csumReplace32(h, 10, from, to);
      const got = rd16(h, 10);
      wr16(h, 10, 0);
      const want = internetChecksum(h);
      return got === want || (got === 0xffff && want === 0) || (got === 0 && want === 0xffff);
    }),
    { numRuns: 20000 },
  );
});

test('a valid header stays valid (sums to 0) after any sequence of updates', () => {
  fc.assert(
    fc.property(header, fc.array(fc.tuple(word, fc.integer({ min: 0, max: 0xffff })), { maxLength: 12 }), (bytes, edits) => {
      const h = withChecksum(bytes);
      for (const [w, to] of edits) {
        const from = rd16(h, w * 2);
        wr16(h, w * 2, to);
        csumReplace16(h, 10, from, to);
      }
      return internetChecksum(h) === 0 || internetChecksum(h) === 0xffff;
    }),
    { numRuns: 5000 },
  );
});

test('UDP: a checksum of 0 ("none") stays 0; an update that comes out 0 is stored as 0xffff', () => {
  const none = new Uint8Array(8);
  udpCsumReplace16(none, 6, 0x1388, 0x1770);
  udpCsumReplace32(none, 6, 0x0a000001, 0xc0000201);
  assert.is(rd16(none, 6), 0);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), (check, from, to) => {
      const b = new Uint8Array(8);
      wr16(b, 6, check);
      udpCsumReplace16(b, 6, from, to);
      return rd16(b, 6) !== 0;
    }),
    { numRuns: 5000 },
  );
});

test('a checksum offset outside the frame is a RangeError, not a write past it', () => {
  const b = new Uint8Array(12);
  assert.throws(() => csumReplace16(b, 11, 0, 1), /outside the 12-byte frame/);
  assert.throws(() => csumReplace32(b, -1, 0, 1), /outside/);
  assert.throws(() => csumReplace16(b, 1.5, 0, 1), /outside/);
});

test.run();
