// The nodes bench's policy (bench/nodes.ts): the chain bench's three TypeScript functions
// (../../chain/work.ts, same handlers), placed on three namespace nodes a, b, c so that one
// gateway (a's, where the client is) reaches every layout of the same chain through routes:
//   /local       upper@a -> reverse@a -> stamp@a        bpfctl-1node (and the hop costs' base)
//   /spread      upper@a -> reverse@b -> stamp@c        bpfctl-3node: three crossings, a->b->c->a
//   /detour      upper@a -> reverse@b -> stamp@a        /local with reverse on b: two crossings
//   /detour-tcp  upper@a -> reverse_tcp@a -> stamp@a    reverse's work on b over a plain TCP
//                                                      connection of a's function (./functions)
//   /a-b-b       upper@a -> reverse@b -> stamp@b        /spread with its b->c hop local
// One instance each, as in the chain bench. The native gateway (the default engine).
import { definePolicy } from 'bpfctl';

const on = (node: 'a' | 'b' | 'c') => ({ nodes: [node] });
const fn = (work: 'upper' | 'reverse' | 'stamp', node: 'a' | 'b' | 'c') => ({ instances: 1, handler: `../../chain/bpfctl/functions/${work}.ts`, placement: on(node) });

export default definePolicy({
  name: 'bench-nodes',
  functions: {
    upper_a: fn('upper', 'a'),
    reverse_a: fn('reverse', 'a'),
    stamp_a: fn('stamp', 'a'),
    reverse_b: fn('reverse', 'b'),
    stamp_b: fn('stamp', 'b'),
    stamp_c: fn('stamp', 'c'),
    reverse_tcp: { instances: 1, handler: './functions/reverse-tcp.ts', placement: on('a') },
  },
  routes: {
    '/local': ['upper_a', 'reverse_a', 'stamp_a'],
    '/spread': ['upper_a', 'reverse_b', 'stamp_c'],
    '/detour': ['upper_a', 'reverse_b', 'stamp_a'],
    '/detour-tcp': ['upper_a', 'reverse_tcp', 'stamp_a'],
    '/a-b-b': ['upper_a', 'reverse_b', 'stamp_b'],
  },
  // 128-byte payloads plus the stamp; enough buffers for 64 connections on every node.
  pool: { bufferSize: 512, bufferCount: 1024 },
});
