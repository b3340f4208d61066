/**
 * The node-link handshake's codec (protocol.ts): the version head every first frame starts with
 * (any version is read back; bpfctl 0.1's bare challenge is version 1; garbage is no version), the
 * version bound into the proofs (a proof relabelled to another version does not hold), several
 * proofs for a rotation (each side accepts the other's current or previous secret, and a dialer
 * never proves more than MAX_PROOFS), cut bodies refused; the secret ring's grace (an injected
 * clock, not a wait); the agent's cluster-wide peer list (its own entry skipped, and checked to be
 * where it listens).
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkSelfEntry, parsePeers } from '../../src/runtime/agent/agent.ts';
import {
  announcedVersion,
  authBody,
  CHANNEL_CONTROL,
  CHANNEL_DATA,
  authOkBody,
  challengeBody,
  checkAuth,
  checkAuthOk,
  HELLO_HEAD,
  helloHead,
  MAX_PROOFS,
  NONCE,
  newNonce,
  PROTOCOL_VERSION,
  parseChallenge,
  T_AUTH,
  T_CHALLENGE,
} from '../../src/runtime/node-link/protocol.ts';
import { SecretRing } from '../../src/runtime/node-link/secrets.ts';

const OLD = Buffer.from('the-old-secret-of-the-policy');
const NEW = Buffer.from('the-new-secret-of-the-policy');
const OTHER = Buffer.from('a-secret-of-another-cluster!');

test('law: the version head of any version is read back from a challenge and an auth frame', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 80 }), (v, rest) => {
      const body = Buffer.concat([helloHead(v), rest]);
      assert.is(announcedVersion(T_CHALLENGE, body), v);
      assert.is(announcedVersion(T_AUTH, body), v);
    }),
  );
});

test('a bare 16-byte challenge is bpfctl 0.1 (version 1); anything without the head is no version', () => {
  assert.is(announcedVersion(T_CHALLENGE, newNonce()), 1);
  assert.is(announcedVersion(T_AUTH, newNonce()), null, 'an auth frame without the head');
  assert.is(announcedVersion(T_CHALLENGE, Buffer.alloc(17, 7)), null);
  assert.is(announcedVersion(T_CHALLENGE, Buffer.from('bpnX\x02\x00')), null, 'wrong magic');
  assert.is(announcedVersion(T_CHALLENGE, Buffer.from('bpn')), null, 'too short for a head');
  // The forged AUTH of multi-node.test.ts (a 16-byte nonce of 7s first) is no version: a bad proof.
  assert.is(announcedVersion(T_AUTH, Buffer.concat([Buffer.alloc(16, 7), Buffer.alloc(33)])), null);
});

test('a challenge is taken only in this version, whole', () => {
  const nonce = newNonce();
  assert.equal(parseChallenge(challengeBody(nonce)), nonce);
  assert.is(challengeBody(nonce).length, HELLO_HEAD + NONCE);
  assert.is(parseChallenge(challengeBody(nonce, PROTOCOL_VERSION + 1)), null);
  assert.is(parseChallenge(challengeBody(nonce).subarray(0, HELLO_HEAD + NONCE - 1)), null);
  assert.is(parseChallenge(nonce), null, 'the version-1 challenge');
});

const handshake = (dialerKeys: Buffer[], acceptorKeys: Buffer[]) => {
  const challenge = newNonce();
  const nonce = newNonce();
  const who = checkAuth(acceptorKeys, 'p', challenge, authBody(dialerKeys, 'p', challenge, nonce, 'node-a'));
  if (!who) return { accepted: false as const };
  const back = checkAuthOk(dialerKeys, 'p', challenge, nonce, authOkBody(who.secret, 'p', challenge, who.nonce, 'node-b'));
  return { accepted: true as const, index: who.index, secret: who.secret, acceptorProved: back };
};

test('rotation: a node with the new and the previous secret links both ways with one that has only the old, and with one that has only the new', () => {
  // The dialer has rotated, the acceptor not yet: its old secret matched, and it proves back with it.
  let h = handshake([NEW, OLD], [OLD]);
  assert.ok(h.accepted);
  assert.equal(h.accepted && [h.index, h.secret.equals(OLD), h.acceptorProved], [0, true, 'node-b']);
  // The acceptor has rotated, the dialer not yet: accepted with the previous secret (index 1).
  h = handshake([OLD], [NEW, OLD]);
  assert.equal(h.accepted && [h.index, h.secret.equals(OLD), h.acceptorProved], [1, true, 'node-b']);
  // Both rotated: the new one is what is used.
  h = handshake([NEW, OLD], [NEW, OLD]);
  assert.equal(h.accepted && [h.index, h.secret.equals(NEW), h.acceptorProved], [0, true, 'node-b']);
  // After the grace: only the new secret on one side, only the old on the other: no link either way.
  assert.is(handshake([OLD], [NEW]).accepted, false);
  assert.is(handshake([NEW], [OLD]).accepted, false);
  assert.is(handshake([OTHER], [NEW, OLD]).accepted, false);
});

test('the acceptor proves only what the dialer holds: a proof back with a secret the dialer lacks is refused', () => {
  const challenge = newNonce();
  const nonce = newNonce();
  assert.is(checkAuthOk([OLD], 'p', challenge, nonce, authOkBody(NEW, 'p', challenge, nonce, 'node-b')), null);
  assert.is(checkAuthOk([NEW, OLD], 'p', challenge, nonce, authOkBody(OLD, 'p', challenge, nonce, 'node-b')), 'node-b');
  // bound to the policy and to both nonces
  assert.is(checkAuthOk([OLD], 'q', challenge, nonce, authOkBody(OLD, 'p', challenge, nonce, 'node-b')), null);
  assert.is(checkAuthOk([OLD], 'p', nonce, challenge, authOkBody(OLD, 'p', challenge, nonce, 'node-b')), null);
});

test('the version is part of the proof: an auth of another version relabelled as this one does not hold', () => {
  const challenge = newNonce();
  const body = authBody([OLD], 'p', challenge, newNonce(), 'node-a', PROTOCOL_VERSION + 1);
  assert.is(announcedVersion(T_AUTH, body), PROTOCOL_VERSION + 1);
  assert.is(checkAuth([OLD], 'p', challenge, body), null, 'another version is not checked as this one');
  const relabelled = Buffer.from(body);
  helloHead().copy(relabelled, 0);
  assert.is(announcedVersion(T_AUTH, relabelled), PROTOCOL_VERSION);
  assert.is(checkAuth([OLD], 'p', challenge, relabelled), null, 'its proof was made for the other version');
  assert.ok(checkAuth([OLD], 'p', challenge, authBody([OLD], 'p', challenge, newNonce(), 'node-a')), 'the same, made for this version, holds');
});

test('the channel is part of the proof: a control connection relabelled as a data connection (or back) does not hold', () => {
  const challenge = newNonce();
  const nonce = newNonce();
  const data = authBody([OLD], 'p', challenge, nonce, 'node-a', PROTOCOL_VERSION, CHANNEL_DATA);
  assert.is(checkAuth([OLD], 'p', challenge, data)?.channel, CHANNEL_DATA);
  assert.is(checkAuth([OLD], 'p', challenge, authBody([OLD], 'p', challenge, nonce, 'node-a'))?.channel, CHANNEL_CONTROL);
  const relabelled = Buffer.from(data);
  relabelled[HELLO_HEAD + NONCE] = CHANNEL_CONTROL;
  assert.is(checkAuth([OLD], 'p', challenge, relabelled), null, 'a data proof is no control proof');
  const unknown = Buffer.from(data);
  unknown[HELLO_HEAD + NONCE] = 7;
  assert.is(checkAuth([OLD], 'p', challenge, unknown), null, 'no third channel');
  // and the acceptor's proof back names the channel too
  const back = authOkBody(OLD, 'p', challenge, nonce, 'node-b', CHANNEL_DATA);
  assert.is(checkAuthOk([OLD], 'p', challenge, nonce, back, CHANNEL_DATA), 'node-b');
  assert.is(checkAuthOk([OLD], 'p', challenge, nonce, back), null);
});

test('law: every strict prefix of a valid auth body is refused, and a dialer proves at most MAX_PROOFS secrets', () => {
  const challenge = newNonce();
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 40 }).filter((n) => Buffer.byteLength(n) <= 253), (name) => {
      const body = authBody([NEW, OLD], 'p', challenge, newNonce(), name);
      assert.is(checkAuth([OLD], 'p', challenge, body)?.name, name);
      for (let cut = 0; cut < body.length; cut++) assert.is(checkAuth([OLD, NEW], 'p', challenge, body.subarray(0, cut)), null, `cut at ${cut}`);
    }),
    { numRuns: 30 },
  );
  const three = authBody([OTHER, NEW, OLD], 'p', challenge, newNonce(), 'node-a');
  assert.is(three[HELLO_HEAD + NONCE + 1], MAX_PROOFS, 'after the channel byte, the count of proofs');
  assert.is(checkAuth([OLD], 'p', challenge, three), null, 'the third secret was not proved');
  // A body claiming more proofs than allowed is refused rather than searched.
  const forged = Buffer.from(authBody([NEW], 'p', challenge, newNonce(), 'node-a'));
  forged[HELLO_HEAD + NONCE + 1] = MAX_PROOFS + 1;
  assert.is(checkAuth([NEW], 'p', challenge, forged), null);
});

test('the secret ring: the previous secret is accepted until the grace ends, the current one always first', () => {
  let now = 1_000_000;
  const ring = new SecretRing(OLD, () => now);
  assert.equal(ring.keys(), [OLD]);
  assert.is(ring.status().generation, 1);
  assert.is(ring.rotate(Buffer.from(OLD), 60_000), false, 'the same secret is no rotation');
  assert.ok(ring.rotate(NEW, 60_000));
  assert.equal(ring.keys(), [NEW, OLD]);
  assert.ok(ring.isCurrent(NEW));
  assert.not.ok(ring.isCurrent(OLD));
  assert.is(ring.status().previousAcceptedUntil, new Date(1_060_000).toISOString());
  now += 59_999;
  assert.equal(ring.keys(), [NEW, OLD]);
  now += 1;
  assert.equal(ring.keys(), [NEW], 'grace over');
  assert.is(ring.status().previousAcceptedUntil, null);
  ring.refuse('the secret file /x is empty');
  assert.is(ring.status().warning, 'the secret file /x is empty');
  assert.equal(ring.keys(), [NEW], 'a refused change keeps the secret');
  // A second rotation: the one it replaces is the previous now, the first is gone.
  assert.ok(ring.rotate(OTHER, 60_000));
  assert.equal(ring.keys(), [OTHER, NEW]);
  assert.is(ring.status().warning, null);
  assert.is(ring.status().generation, 3);
});

test('the peer list may name this node: its entry is skipped, the same name twice stays an error', () => {
  const r = parsePeers('a=10.0.0.1:7946,b=10.0.0.2:7946,c=[fd00::3]:7946', 'b');
  assert.equal(r.peers, [
    { name: 'a', host: '10.0.0.1', port: 7946 },
    { name: 'c', host: 'fd00::3', port: 7946 },
  ]);
  assert.equal(r.self, { name: 'b', host: '10.0.0.2', port: 7946 });
  assert.is(parsePeers('a=10.0.0.1:7946', 'b').self, null);
  assert.throws(() => parsePeers('a=10.0.0.1:7946,b=10.0.0.2:7946,b=10.0.0.9:7946', 'b'), /--peers names b twice/);
  assert.throws(() => parsePeers('a=10.0.0.1:7946,a=10.0.0.1:7946', 'b'), /--peers names a twice/);
});

test("this node's entry must be where it listens: port, address (any spelling), its own addresses under a wildcard", async () => {
  const self = (host: string, port = 7946) => ({ name: 'b', host, port });
  const refused = async (entry: { name: string; host: string; port: number }, listen: { host: string; port: number }) => ((await checkSelfEntry(entry, listen).catch((e: Error) => e)) as Error | undefined)?.message ?? '';
  await checkSelfEntry(self('10.0.0.2'), { host: '10.0.0.2', port: 7946 });
  await checkSelfEntry(self('fd00:0:0::2'), { host: 'fd00::2', port: 7946 });
  await checkSelfEntry(self('127.0.0.1'), { host: '0.0.0.0', port: 7946 });
  await checkSelfEntry(self('localhost'), { host: '127.0.0.1', port: 7946 });
  assert.match(await refused(self('10.0.0.2'), { host: '10.0.0.3', port: 7946 }), /^--peers gives this node \(b\) the address 10\.0\.0\.2:7946, but its node-link listens on 10\.0\.0\.3:7946: the other nodes would dial the wrong place/);
  assert.match(await refused(self('10.0.0.2', 7000), { host: '10.0.0.2', port: 7946 }), /10\.0\.0\.2:7000, but its node-link listens on port 7946/);
  assert.match(await refused(self('10.0.0.2'), { host: '10.0.0.2', port: 0 }), /listens on any free port/);
  // 192.0.2.0/24 is TEST-NET-1: no machine has it.
  assert.match(await refused(self('192.0.2.77'), { host: '0.0.0.0', port: 7946 }), /the address 192\.0\.2\.77:7946, but that is no address of this machine/);
  assert.match(await refused(self('no-such-node.invalid'), { host: '0.0.0.0', port: 7946 }), /no-such-node\.invalid does not resolve/);
  assert.match(await refused(self('fd00::2'), { host: 'fd00::3', port: 7946 }), /the address \[fd00::2\]:7946, but its node-link listens on \[fd00::3\]:7946/);
});

test.run();
