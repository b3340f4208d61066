// tc sections whose generated C is kept in this directory (one <name>.bpf.c each). The kernel
// suite (test/kernel/tc-policy.test.ts) also loads every one of them, so each golden program is
// known to pass the verifier.
import type { TcSectionSpec } from '../../../src/dsl/tc.ts';

export const TC_GOLDEN_SECTIONS: Record<string, TcSectionSpec> = {
  // What a host may send: DNS only to its resolvers, no SMTP, no traffic to a blocked range.
  egress: {
    interface: 'eth0',
    direction: 'egress',
    default: 'pass',
    sets: {
      resolvers: { type: 'ipv4', elements: ['192.0.2.53', '198.51.100.53'] },
      blocked: { type: 'ipv4-prefix', elements: ['203.0.113.0/24'] },
      mirror6: { type: 'ipv6-prefix', elements: ['2001:db8:77::/48'] },
    },
    rules: [
      { name: 'dns-resolvers', match: { dst: { set: 'resolvers' }, proto: 'udp', dport: 53 }, action: 'pass' },
      { name: 'dns-others', match: { proto: 'udp', dport: 53 }, action: 'drop' },
      { name: 'no-smtp', match: { proto: 'tcp', dport: 25, tcpFlags: 'syn,!ack' }, action: 'drop' },
      { name: 'blocked', match: { dst: { set: 'blocked' } }, action: 'drop' },
      { name: 'to-mirror', match: { dst: { set: 'mirror6' }, proto: 'tcp', dport: [8000, 8999] }, action: { redirect: 'eth1' } },
      { name: 'tagged-lldp', match: { vlan: 30, ethType: 0x88cc }, action: 'drop', count: false },
    ],
  },
  // What a host receives: bounce health probes, drop a QinQ service VLAN, pass malformed frames on.
  ingress: {
    interface: 'veth0',
    direction: 'ingress',
    malformed: 'pass',
    default: 'drop',
    sets: { macs: { type: 'mac', elements: ['02:00:00:00:00:0a'] }, web: { type: 'port', elements: [80, 443] } },
    rules: [
      { name: 'probe-bounce', match: { srcMac: { set: 'macs' }, proto: 'udp', dport: 7 }, action: 'tx' },
      { name: 'qinq-100-200', match: { vlan: 100, innerVlan: 200 }, action: 'drop' },
      { name: 'web', match: { proto: 'tcp', dport: { set: 'web' } }, action: 'pass' },
      { name: 'ping6', match: { proto: 'icmpv6', icmpType: 'echo-request' }, action: 'pass' },
      { name: 'nd', match: { proto: 'icmpv6' }, action: 'pass' },
      { name: 'arp', match: { ethType: 'arp' }, action: 'pass' },
      { name: 'ef', match: { dscp: 46, proto: 'udp' }, action: 'pass' },
    ],
  },
  minimal: { interface: 'lo', direction: 'egress' },
};
