
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import firewall from '../../examples/firewall/policy.ts';
import { generateXdp } from '../../src/codegen/xdp/index.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';
import { lowerXdpSections } from '../../src/ir/xdp.ts';
import { GOLDEN_SECTIONS } from '../golden/xdp/sections.ts';
import { matchGolden } from '../helpers/golden.ts';

const test = suite('xdp golden');
const dir = join(dirname(fileURLToPath(import.meta.url)), '../golden/xdp');

function golden(name: string, source: string): void {
  matchGolden(dir, `${name}.bpf.c`, source);
}

for (const [name, section] of Object.entries(GOLDEN_SECTIONS)) {
  test(`section ${name}`, () => {
    const xdp = lowerXdpSections([section], 'xdp');
    const out = generateXdp({ name: `golden-${name}`, xdp }, 0);
    assert.is(out.file, `xdp-${section.interface}.bpf.c`);
    golden(name, out.source);
  });
}

test('examples/firewall', () => {
  golden('firewall', generateXdp(lowerPolicy(firewall), 0).source);
});

test('deterministic and self-describing', () => {
  const ir = lowerPolicy(firewall);
  const a = generateXdp(ir, 0).source;
  const b = generateXdp(JSON.parse(JSON.stringify(ir)), 0).source;
  assert.is(a, b);
  assert.ok(a.startsWith('/* DO NOT EDIT'));
  assert.ok(a.includes('counted in\n * xdp_stats[0] ("malformed") and dropped'));
  for (const r of ir.xdp[0]!.rules) assert.ok(a.includes(`/* rule ${r.index} "${r.name}": ${r.summary} */`), r.name);
});

test('long sections are split into rule functions; short ones switch on the protocol', () => {
  const long = lowerXdpSections([{ interface: 'eth0', rules: Array.from({ length: 300 }, (_, i) => ({ match: { proto: 'udp' as const, dport: i + 1 }, action: 'drop' as const })) }], 'xdp');
  const src = generateXdp({ name: 'x', xdp: long }, 0).source;
  for (const f of ['rules_0', 'rules_128', 'rules_256']) assert.ok(src.includes(`static __noinline int ${f}(`), f);
  assert.not.ok(src.includes('switch (p.proto)'));
  const short = generateXdp({ name: 'x', xdp: lowerXdpSections([GOLDEN_SECTIONS.everything!], 'xdp') }, 0).source;
  assert.ok(short.includes('switch (p.proto)'));
  assert.not.ok(short.includes('__noinline'));
});

test('user text cannot end a C comment', () => {
  const xdp = lowerXdpSections([{ interface: 'eth0', rules: [{ action: 'pass' }] }], 'xdp');
  const src = generateXdp({ name: 'a*/b', xdp }, 0).source;
  assert.ok(src.includes('"a*\\/b"'), 'escaped as the chain generator escapes it');
  assert.not.ok(src.split('\n')[0]!.slice(2).includes('*/b'));
});

test('an xdp error surfaces from lowerPolicy with its path', () => {
  try {
    lowerPolicy({ ...firewall, xdp: [{ interface: 'eth0', rules: [{ match: { dport: [9, 1] }, action: 'drop' }] }] });
    assert.unreachable();
  } catch (e) {
    assert.is((e as { path: string }).path, 'xdp[0].rules[0].match.dport');
  }
});

test.run();
