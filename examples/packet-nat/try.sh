#!/usr/bin/env bash
# A veth test bench for examples/packet-nat, as root: three network namespaces stand in for the
# tenant network, the NAT host and the uplink's next hop.
#
#   nat-tenant (10.0.0.1) --veth-- tenant0 [nat-host: XDP + AF_XDP + nat + count] uplink0 --veth-- nat-uplink (192.0.2.2)
#
# It runs the policy with `bpfctl run --netns nat-host`, sends three UDP datagrams from the
# tenant, prints what the next hop received (the NAT's address and port, not the tenant's), shows
# `bpfctl status packet-nat`, and removes everything. bash try.sh [keep] leaves it running.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bpfctl=(node "$here/../../bin/bpfctl.js")

cleanup() {
  [[ -n "${run_pid:-}" ]] && kill -INT "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null || true
  for ns in nat-tenant nat-host nat-uplink; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

for ns in nat-tenant nat-host nat-uplink; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add tenant-side netns nat-tenant type veth peer name tenant0 netns nat-host
ip link add uplink0 netns nat-host address 02:00:00:00:00:01 type veth peer name uplink-side netns nat-uplink address 02:00:00:00:00:02
ip -n nat-tenant addr add 10.0.0.1/24 dev tenant-side
ip -n nat-tenant link set tenant-side up
# A local stack over veth leaves UDP/TCP checksums for the "NIC" to finish (TX checksum offload);
# AF_XDP hands frames over as they are, so the tenant must send whole checksums, as a wire would.
ip netns exec nat-tenant ethtool -K tenant-side tx off >/dev/null
ip -n nat-tenant route add default via 10.0.0.254
ip -n nat-host addr add 10.0.0.254/24 dev tenant0
ip -n nat-host addr add 192.0.2.1/24 dev uplink0
ip -n nat-host link set tenant0 up
ip -n nat-host link set uplink0 up
ip -n nat-uplink addr add 192.0.2.2/24 dev uplink-side
ip -n nat-uplink link set uplink-side up

"${bpfctl[@]}" run "$here/policy.ts" --netns nat-host &
run_pid=$!
for _ in $(seq 1 100); do "${bpfctl[@]}" status packet-nat >/dev/null 2>&1 && break; sleep 0.2; done
sleep 1

# The next hop prints who each datagram came from; the tenant sends three.
ip netns exec nat-uplink python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("192.0.2.2", 9)); s.settimeout(3)
try:
    for _ in range(3):
        data, peer = s.recvfrom(2048)
        print(f"next hop got {data.decode()!r} from {peer[0]}:{peer[1]}")
except socket.timeout:
    print("next hop: nothing more within 3 s")
' &
recv_pid=$!
sleep 0.5
# The tenant needs its gateway's MAC: the host kernel answers ARP (the classifier passes it).
ip netns exec nat-tenant python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.0.0.1", 4444))
for i in range(3): s.sendto(f"hello {i}".encode(), ("192.0.2.2", 9))
'
wait "$recv_pid"
"${bpfctl[@]}" status packet-nat | sed -n '/Packet chains/,$p'
if [[ "${1:-}" == keep ]]; then echo "running; Ctrl-C stops it"; wait "$run_pid"; fi
