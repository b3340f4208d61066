/**
 * A policy with packet chains against its golden files: the XDP program of a section that steers
 * into chains (test/golden/xdp/chains.bpf.c), the IR, and the graphs (test/golden/packet/edge.*).
 * Drift fails; `UPDATE_GOLDEN=1` rewrites them (review the diff: the C is what the kernel runs).
 * test/kernel/xdp-chain.test.ts loads the same program into the kernel.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { generateXdp } from '../../src/codegen/xdp/index.ts';
import { renderGraph } from '../../src/codegen/graph.ts';
import { hashIR, lowerPolicy } from '../../src/ir/policy.ts';
import { EDGE, EDGE_DIR } from '../golden/packet/edge.ts';
import { matchGolden } from '../helpers/golden.ts';

const test = suite('packet golden');
const golden = join(dirname(fileURLToPath(import.meta.url)), '../golden');
const ir = lowerPolicy(EDGE, { baseDir: EDGE_DIR });

test('the XDP program of a section with chain rules', () => {
  const out = generateXdp(ir, 0);
  assert.is(out.file, 'xdp-veth-in.bpf.c');
  matchGolden(join(golden, 'xdp'), 'chains.bpf.c', out.source);
  // Every chain rule tags, then redirects with the drop fallback; the counter comes first.
  for (const r of ir.xdp[0]!.rules.filter((x) => x.action.kind === 'chain')) {
    const a = r.action as { chain: number; name: string };
    const at = out.source.indexOf(`/* rule ${r.index} "${r.name}"`);
    const block = out.source.slice(at, out.source.indexOf('}', at));
    const tag = block.indexOf(`tag_chain(ctx, ${a.chain});`);
    assert.ok(tag > 0, r.name);
    assert.ok(block.indexOf('return bpf_redirect_map(&xsk_chains, ctx->rx_queue_index, XDP_DROP);') > tag, r.name);
    if (r.count) assert.ok(block.indexOf(`count(&rule_stats, ${r.index}, bytes);`) < tag, `${r.name}: counted before the metadata moves`);
    else assert.not.ok(block.includes('count(&rule_stats'), r.name);
  }
});

test('a default that steers into a chain, and a section without chains has no chain code', () => {
  const side = generateXdp(ir, 1).source;
  assert.match(side, /\/\* default: chain inspect \(AF_XDP, xsk_chains\) \*\/\n\tcount\(&rule_stats, 1, bytes\);\n\ttag_chain\(ctx, 1\);/);
  assert.ok(side.includes('} xsk_chains SEC(".maps");'));
  const plain = generateXdp(lowerPolicy({ name: 'p', xdp: [{ interface: 'eth0', rules: [{ action: { xsk: 'ids' } }] }] }), 0).source;
  for (const s of ['tag_chain', 'CHAIN_META_TAG', 'xsk_chains', 'packet chain']) assert.not.ok(plain.includes(s), s);
});

test('the IR and the graphs', () => {
  matchGolden(join(golden, 'packet'), 'edge.ir.json', `${JSON.stringify(ir, null, 2)}\n`);
  matchGolden(join(golden, 'packet'), 'edge.dot', renderGraph(ir, 'dot'));
  matchGolden(join(golden, 'packet'), 'edge.mmd', renderGraph(ir, 'mermaid'));
  assert.is(ir.hash, hashIR(ir));
  // Every packet chain is drawn once, entered from every section that steers into it.
  const dot = renderGraph(ir, 'dot');
  for (const [i, c] of ir.packet!.chains.entries()) assert.ok(dot.includes(`subgraph "cluster_pc${i}" {\n\t\tlabel="packet chain ${c.name}`), c.name);
  assert.equal(dot.match(/ -> pc\d_\w+ \[label="AF_XDP"\];/g)?.length, 4);
});

test.run();
