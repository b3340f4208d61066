/** VerifierError's one-line summary of a verifier log. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VerifierError } from '../../loader/errors.ts';

test('the failing instruction and the reason', () => {
  const log = ['0: (61) r2 = *(u32 *)(r1 +0)', '1: (61) r3 = *(u32 *)(r1 +4)', '2: (71) r0 = *(u8 *)(r2 +0)', 'invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)', 'R2 offset is outside of the packet', 'processed 3 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0'];
  assert.is(VerifierError.summarise('xdp_prog', 13, log), "prog 'xdp_prog' rejected by the verifier (EACCES): 2: (71) r0 = *(u8 *)(r2 +0): invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0); R2 offset is outside of the packet (3 lines omitted)");
});

test('a program past the verifier budget says so and what to do', () => {
  const log = ['0: (b7) r0 = 0', '...', 'BPF program is too large. Processed 1000001 insn', 'processed 1000001 insns (limit 1000000) max_states_per_insn 4 total_states 9000 peak_states 9000 mark_read 10'];
  const m = VerifierError.summarise('xdp_classify', 7, log);
  assert.match(m, /^prog 'xdp_classify' rejected by the verifier \(E2BIG\): too complex to verify \(BPF program is too large\. Processed 1000001 insn\)/);
  assert.match(m, /put long lists in sets$/);
});

test('EAGAIN is an interrupted verification (signals), not a rejection, whatever the log holds', () => {
  const m = VerifierError.summarise('chain_msg', 11, ['0: (b7) r0 = 0', 'processed 100 insns']);
  assert.match(m, /^prog 'chain_msg' was not verified: the verifier was interrupted by signals/);
  assert.not.match(m, /rejected/);
  // Another errno with the same log is still a rejection.
  assert.match(VerifierError.summarise('chain_msg', 13, ['0: (b7) r0 = 0', 'processed 100 insns']), /rejected by the verifier \(EACCES\)/);
});

test.run();
