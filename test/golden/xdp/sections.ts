// Sections whose generated C is kept in this directory (one <name>.bpf.c each). The kernel
// suite also loads every one of them, so each golden program is known to pass the verifier.
import type { XdpSectionSpec } from '../../../src/dsl/xdp.ts';

export const GOLDEN_SECTIONS: Record<string, XdpSectionSpec> = {
  minimal: { interface: 'eth0' },
  everything: {
    interface: 'veth0',
    default: 'pass',
    sets: {
      blocked: { type: 'ipv4-prefix', elements: ['10.0.0.0/8'] },
      blocked6: { type: 'ipv6-prefix', elements: ['2001:db8::/32'] },
      ports: { type: 'port', elements: [80, 443] },
      macs: { type: 'mac', elements: ['02:00:00:00:00:aa'] },
      hosts4: { type: 'ipv4', elements: ['192.0.2.1'] },
      hosts6: { type: 'ipv6', elements: ['2001:db8::1'] },
    },
    rules: [
      { name: 'blocked', match: { src: { set: 'blocked' } }, action: 'drop' },
      { name: 'blocked6', match: { src: { set: 'blocked6' }, dst: { set: 'hosts6' } }, action: 'drop' },
      { name: 'to-xsk', match: { dst: { set: 'hosts4' }, dport: { set: 'ports' } }, action: { xsk: 'ids' } },
      { name: 'mac-bounce', match: { srcMac: { set: 'macs' }, dstMac: '02:00:00:00:00:01' }, action: 'tx' },
      { name: 'syn-range', match: { src: '192.168.0.0/16', proto: 'tcp', dport: [1000, 2000], tcpFlags: 'syn,!ack' }, action: 'drop' },
      { name: 'ping6', match: { dst: '2001:db8:1:2::/64', proto: 'icmpv6', icmpType: 'echo-request' }, action: 'drop', count: false },
      { name: 'qinq-arp', match: { vlan: 100, innerVlan: 200, ethType: 'arp' }, action: { redirect: 'veth1' } },
      { name: 'ef-udp', match: { dscp: 46, proto: 'udp' }, action: 'pass' },
      { name: 'low-ports', match: { sport: [0, 1023] }, action: 'drop' },
    ],
  },
  l2: {
    interface: 'eth1.100',
    malformed: 'pass',
    default: { redirect: 'eth2' },
    rules: [
      { name: 'vlan-10', match: { vlan: 10 }, action: 'pass' },
      { name: 'lldp', match: { ethType: 0x88cc }, action: 'drop' },
      { name: 'from-router', match: { srcMac: '00:11:22:33:44:55' }, action: 'pass' },
      { name: 'all-ports', match: { proto: 'udp', dport: [0, 65535] }, action: 'pass' },
    ],
  },
  prefixes6: {
    interface: 'eth0',
    default: 'drop',
    rules: [
      { match: { src: '::/0', proto: 'tcp' }, action: 'pass' },
      { match: { src: '8000::/1' }, action: 'pass' },
      { match: { src: '2001:db8:8000::/33' }, action: 'pass' },
      { match: { dst: 'fd00:1:2:3::/64' }, action: 'pass' },
      { match: { dst: 'fd00::/127' }, action: 'pass' },
      { match: { dst: 'fd00::1' }, action: 'pass' },
      { match: { src: '0.0.0.0/0', dst: '10.1.2.3' }, action: 'pass' },
    ],
  },
};
