// A source NAT in front of a tenant network, as a packet chain (docs/packet-chains.md): the XDP
// classifier on the tenant-facing interface steers the tenant's UDP and TCP into the chain
// `tenant-nat`, whose two C network functions rewrite each frame in place in the shared pool (nat)
// and count it (count) before pktio transmits it on the uplink. Everything else (ARP, ICMP to the
// host, management SSH) takes the kernel path.
//
// Interfaces: `tenant0` faces the tenants, `uplink0` the next hop. Rename them to yours, and set
// SNAT_ADDR to the uplink's address and the MACs to the uplink's own and the next hop's
// (`ip link show uplink0`, `ip neigh`). `bpfctl run examples/packet-nat/policy.ts` then starts it;
// `bpfctl status packet-nat` shows the frames each chain, function and port handled.
import { definePolicy, pass, toChain, xdpSection } from 'bpfctl';

export default definePolicy({
  name: 'packet-nat',
  // AF_XDP takes pool buffers as its frames: 2048 or 4096 bytes each.
  pool: { bufferSize: 2048, bufferCount: 4096 },
  packetFunctions: {
    nat: {
      handler: './nf/snat.c',
      env: { SNAT_ADDR: '192.0.2.1', SNAT_PORTS: '20000-29999', SNAT_SRC_MAC: '02:00:00:00:00:01', SNAT_DST_MAC: '02:00:00:00:00:02' },
    },
    count: { handler: './nf/count.c' },
  },
  packetChains: {
    // Event driven: the functions sleep while there is no traffic. `poll: true` trades a core
    // per function for the lowest latency.
    'tenant-nat': { functions: ['nat', 'count'], egress: { tx: 'uplink0' } },
  },
  xdp: [
    xdpSection({
      interface: 'tenant0',
      rules: [
        toChain('tenant-nat', { src: '10.0.0.0/8', proto: 'udp' }, { name: 'tenant-udp' }),
        toChain('tenant-nat', { src: '10.0.0.0/8', proto: 'tcp' }, { name: 'tenant-tcp' }),
        pass({}, { name: 'kernel' }),
      ],
    }),
  ],
});
