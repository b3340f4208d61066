// An edge firewall in front of a MiddleNet host: XDP classifies every packet on the uplink before
// the kernel builds an skb. Block lists and allow lists are sets, so operators change them live
// (`bpfctl set add edge-firewall blocklist4 192.0.2.0/24`) without reloading anything; VXLAN
// traffic is one flow class handed to an AF_XDP deep-packet-inspection process; the rest is a
// stateless port policy that ends in a default drop.
//
// The interface is `uplink0`: rename it to your uplink (e.g. eth0) on purpose. Loading a default-
// drop policy on the interface you are logged in through cuts you off unless you are in `admins`.
import { bounce, definePolicy, drop, pass, set, toXsk, xdpSection } from 'bpfctl';

export default definePolicy({
  name: 'edge-firewall',
  functions: {
    audit: { instances: 1, handler: './functions/audit.ts' },
  },
  routes: {
    '/audit': ['audit'],
  },
  pool: { bufferSize: 2048, bufferCount: 256 },
  xdp: [
    xdpSection({
      interface: 'uplink0',
      mode: 'auto',
      default: 'drop',
      malformed: 'drop',
      sets: {
        blocklist4: { type: 'ipv4-prefix', elements: ['192.0.2.0/24', '198.51.100.0/24'], maxEntries: 65536 },
        blocklist6: { type: 'ipv6-prefix', elements: ['2001:db8:bad::/48'], maxEntries: 65536 },
        admins: { type: 'ipv4-prefix', elements: ['203.0.113.0/28', '10.20.0.0/16'] },
        web: { type: 'port', elements: [80, 443, 8443] },
        probes: { type: 'ipv4', elements: ['203.0.113.250'] },
      },
      rules: [
        // Cheap kills first: known-bad sources and flag combinations no real stack sends.
        drop({ src: set('blocklist4') }, { name: 'blocklist-v4' }),
        drop({ src: set('blocklist6') }, { name: 'blocklist-v6' }),
        drop({ tcpFlags: 'syn,fin' }, { name: 'syn-fin' }),
        drop({ tcpFlags: 'syn,rst' }, { name: 'syn-rst' }),
        // Health probes from the load balancer are answered by bouncing them, never by the host.
        bounce({ src: set('probes'), proto: 'udp', dport: 7 }, { name: 'lb-echo' }),
        // Management: SSH only from the admin networks.
        pass({ src: set('admins'), proto: 'tcp', dport: 22 }, { name: 'ssh-admins' }),
        drop({ proto: 'tcp', dport: 22 }, { name: 'ssh-others' }),
        // Services.
        pass({ proto: 'tcp', dport: set('web') }, { name: 'web' }),
        pass({ proto: 'udp', dport: 443 }, { name: 'quic' }),
        // Tunnelled tenant traffic goes to the DPI process over AF_XDP, not through the stack.
        toXsk('dpi', { proto: 'udp', dport: 4789 }, { name: 'vxlan-dpi' }),
        // What the host itself needs to work.
        pass({ ethType: 'arp' }, { name: 'arp' }),
        pass({ proto: 'icmpv6' }, { name: 'icmpv6' }),
        pass({ proto: 'icmp', icmpType: 'echo-request' }, { name: 'ping' }),
        pass({ proto: 'icmp', icmpType: 'dest-unreachable', icmpCode: 4 }, { name: 'pmtu' }),
        pass({ proto: 'udp', sport: 53 }, { name: 'dns-replies' }),
        // Return traffic of the host's own outbound TCP connections (stateless: ACK set).
        pass({ proto: 'tcp', dport: [32768, 60999], tcpFlags: { ack: true } }, { name: 'tcp-return' }),
      ],
    }),
  ],
});
