#!/usr/bin/env bash
# Installs everything bpfctl needs on a fresh Debian 12 machine (as root): the toolchain that
# compiles generated C (clang), libbpf, bpftool, iproute2, Graphviz, DPDK for the pool example,
# wrk for the HTTP benchmark, iptables/nftables/ipset for the XDP comparison; mounts bpffs; npm ci;
# builds the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (bpfctl loads eBPF programs and installs system packages)" >&2
  exit 1
fi

packages=(clang llvm libbpf-dev libbpf1 bpftool iproute2 libxdp-dev graphviz wrk iptables nftables ipset
  dpdk dpdk-dev libdpdk-dev pkg-config make gcc libc6-dev python3 procps prometheus libh2o-evloop-dev ethtool util-linux haproxy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
# cgroup v2: bpfctl attaches sockops to a cgroup it creates under the v2 hierarchy.
if [ ! -e /sys/fs/cgroup/unified/cgroup.procs ] && [ ! -e /sys/fs/cgroup/cgroup.procs ]; then
  mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# The CLI runs compiled JavaScript (dist/); build it so `npx bpfctl` works in the checkout.
npm run build --silent
