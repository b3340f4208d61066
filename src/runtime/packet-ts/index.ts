/**
 * The TypeScript packet SDK (`bpfctl/packet`): what a TypeScript packet function imports. A
 * handler module default-exports `(packets, ctx) => void`; see docs/packet-chains.md.
 */
export { csumReplace16, csumReplace32, internetChecksum, udpCsumReplace16, udpCsumReplace32 } from './checksum.ts';
export { DROP, ETH_P_IP, ETH_P_IPV6, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, NEXT, Packet, type PacketContext, type PacketHandler, REFLECT, type Verdict } from './packet.ts';
