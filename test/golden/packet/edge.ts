// The packet-chain policy whose generated XDP program (test/golden/xdp/chains.bpf.c), IR and
// graphs (edge.*) are kept as golden files; the kernel suite also loads and test-runs the
// program (test/kernel/xdp-chain.test.ts). Its paths resolve against EDGE_DIR, so the IR is the
// same on every machine.
import { definePolicy, drop, pass, toChain, xdpSection } from '../../../src/dsl/index.ts';

export const EDGE_DIR = '/srv/edge';

export const EDGE = definePolicy({
  name: 'edge',
  pool: { bufferSize: 2048, bufferCount: 4096 },
  functions: { web: { instances: 1, handler: './web.ts' } },
  routes: { '/': ['web'] },
  packetFunctions: {
    nat: { handler: './nf/snat.c', env: { SNAT_ADDR: '198.18.9.1', SNAT_PORTS: '20000-20999' } },
    count: { handler: './nf/count.c', instances: 2 },
    dpi: { command: ['./bin/dpi', '--rules', 'smtp.rules'], instances: 4 },
    sample: { handler: './nf/sample.ts' },
  },
  packetChains: {
    'tenant-nat': { functions: ['nat', 'count'], egress: { tx: 'veth-out' } },
    inspect: { functions: ['dpi', 'count'], egress: 'drop', poll: true },
    reflect: { functions: [], egress: { tx: 'veth-in' } },
    // A TypeScript NF (marked TS in the graphs) that no rule steers to yet.
    sampled: { functions: ['sample', 'count'], egress: 'drop' },
  },
  xdp: [
    xdpSection({
      interface: 'veth-in',
      sets: { tenants: { type: 'ipv4-prefix', elements: ['198.18.0.0/24'] } },
      rules: [
        toChain('tenant-nat', { src: { set: 'tenants' }, proto: 'udp', dport: 4789 }, { name: 'tenant' }),
        toChain('inspect', { proto: 'tcp', dport: 25 }, { name: 'smtp' }),
        toChain('reflect', { proto: 'udp', dport: 7 }, { name: 'echo', count: false }),
        drop({ proto: 'udp', dport: 9 }, { name: 'discard' }),
        pass({ proto: 'tcp', dport: 80 }, { name: 'web' }),
      ],
    }),
    xdpSection({ interface: 'veth-side', default: { chain: 'inspect' }, rules: [pass({ ethType: 'arp' }, { name: 'arp' })] }),
  ],
});
