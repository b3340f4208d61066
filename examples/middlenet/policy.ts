// MiddleNet's two halves on one host (docs/packet-chains.md): the XDP classifier on the uplink
// looks at every frame once and picks its path.
//
// - VXLAN (UDP 4789) is an L2/L3 flow: it is steered into the packet chain `overlay`, where two
//   C network functions decapsulate it and count it in place in the shared pool, and pktio sends
//   the inner frame out of `overlay0` (AF_XDP; no skb, no socket).
// - HTTP to the gateway is an L4/L7 flow: it passes to the kernel's TCP stack once, and the
//   request chain `/upper` carries it between functions as descriptors over sk_msg.
// - Everything else passes to the kernel as if there were no classifier.
//
// Both chains use the same pool. Rename `uplink0` and `overlay0` to your interfaces, then
// `bpfctl run examples/middlenet/policy.ts --host 0.0.0.0` and `bpfctl status middlenet`.
import { definePolicy, pass, toChain, xdpSection } from 'bpfctl';

export default definePolicy({
  name: 'middlenet',
  functions: {
    upper: { instances: 1, handler: './functions/upper.ts' },
  },
  routes: {
    '/upper': ['upper'],
  },
  pool: { bufferSize: 2048, bufferCount: 2048 },
  packetFunctions: {
    decap: { handler: '../packet-nat/nf/vxlan_decap.c' },
    count: { handler: '../packet-nat/nf/count.c' },
  },
  packetChains: {
    overlay: { functions: ['decap', 'count'], egress: { tx: 'overlay0' } },
  },
  xdp: [
    xdpSection({
      interface: 'uplink0',
      rules: [toChain('overlay', { proto: 'udp', dport: 4789 }, { name: 'vxlan' }), pass({}, { name: 'rest' })],
    }),
  ],
});
