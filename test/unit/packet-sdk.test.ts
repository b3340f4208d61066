/**
 * The packet function helpers (bpf/include/bpfctl/packet_hdr.h, adjust_head/tail in packet.h)
 * through test/c/packet_sdk_test.c, built with AddressSanitizer and UBSan: each parsed frame ends
 * exactly where its allocation does, so any read past a short frame aborts the run. Parsers see
 * every truncation of valid frames, non-IP, VLAN, fragments, broken lengths and 200k random or
 * mutated frames; checksum updates are compared with full recomputations on random inputs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type BuiltC, buildC, lastJson, runC } from '../helpers/packet-c.ts';

let built: BuiltC | undefined;
const bin = () => {
  built ??= buildC('packet-sdk', ['test/c/packet_sdk_test.c'], { flags: ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-O1'] });
  return built.bin;
};

async function mode(name: string): Promise<Record<string, unknown>> {
  const r = await runC(bin(), [name], 120_000, { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' });
  assert.is(r.code, 0, `${name}: ${r.stderr}`);
  return lastJson(r.stdout);
}

test('parsers: truncated, non-IP, VLAN, fragments, broken lengths, random frames: nothing read or returned past the frame', async () => {
  const r = await mode('parsers');
  assert.ok((r.parserCases as number) > 200000);
});

test('checksums: full IPv4 header, RFC 1624 updates of 16/32-bit fields (IP and UDP/TCP pseudo-header) equal recomputation; UDP 0 stays 0', async () => {
  const r = await mode('checksums');
  assert.ok((r.udpNone as number) > 0, 'some UDP packets had no checksum');
});

test('adjust_head and adjust_tail stay inside the buffer and above an Ethernet header', async () => {
  assert.equal(await mode('adjust'), { ok: true });
});

test('flow hash: both directions of a flow alike, flows spread over buckets', async () => {
  const r = await mode('hash');
  assert.is(r.flows, 20000);
});

test.after(() => built?.cleanup());

test.run();
