/**
 * The agent container's command: a few lines of POSIX sh that finish what a pod template cannot
 * say per node, then `exec bpfctl agent run` (so the agent is the container's main process and
 * gets its SIGTERM).
 *
 * - The policy's cgroup. The node's cgroup v2 tree is mounted from the host, but the container
 *   has its own cgroup namespace, and on a host that mounts cgroup2 with `nsdelegate` (systemd
 *   does) a process may move processes only between cgroups inside its namespace. bpfctl's default
 *   `<cgroup2>/bpfctl` is the host's top level, outside it; so the parent is put under the
 *   container's own cgroup (found by its cgroup.procs listing this shell), where the pod's limits
 *   and the runtime's cleanup cover the function processes too.
 *
 * The peers need nothing here: one template serves every node, so `BPFCTL_PEERS` lists them all,
 * and the agent skips its own entry (checking it is the address it listens on).
 */

/** Where the pod mounts what the agent reads and writes. */
export const MOUNT = {
  policy: '/etc/bpfctl/policy',
  secret: '/etc/bpfctl/secret',
  bpffs: '/sys/fs/bpf',
  cgroup: '/sys/fs/cgroup',
  shm: '/dev/shm',
  hugepages: '/dev/hugepages',
  run: '/run/bpfctl',
  cache: '/var/cache/bpfctl',
} as const;

export interface AgentScriptOptions {
  /** The gateway's port, or null for a policy without a chain (no gateway). */
  gatewayPort: number | null;
  linkPort: number;
  /** True when the policy spans nodes: the node-link listens on the node IP for the peers. */
  linked: boolean;
}

/** The script as sh reads it (before the escaping a pod's `command` needs: `forCommand`). */
export function agentScript(o: AgentScriptOptions): string {
  const run = ['exec bpfctl agent run', `--policy ${MOUNT.policy}`];
  // Unlinked, nobody dials in: a free loopback port, so agents of several policies never collide.
  run.push(o.linked ? `--listen "[$POD_IP]:${o.linkPort}"` : '--listen 127.0.0.1:0');
  if (o.gatewayPort !== null) run.push(`--host 0.0.0.0 --port ${o.gatewayPort}`);
  const lines = [
    '# Written by bpfctl k8s manifests (docs/kubernetes.md). Every dollar sign is doubled in the',
    '# manifest: Kubernetes expands dollar-parenthesis variables in a command, and two dollars are one.',
    'set -euf',
    `cg=${MOUNT.cgroup}`,
    '[ -f "$cg/cgroup.controllers" ] || { echo "bpfctl: $cg is not a cgroup v2 hierarchy: the node must run cgroup v2 (docs/kubernetes.md)" >&2; exit 1; }',
    '# This container\'s cgroup: the one whose cgroup.procs lists this shell (pids as this pod sees them).',
    'own=`find "$cg" -xdev -name cgroup.procs -exec grep -lx "$$" {} + 2>/dev/null | head -n 1`',
    '[ -n "$own" ] || { echo "bpfctl: no cgroup under $cg lists this container\'s shell (pid $$)" >&2; exit 1; }',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: sh parameter expansion, not a template
    'export BPFCTL_CGROUP_PARENT="${own%/cgroup.procs}/bpfctl"',
    run.join(' '),
  ];
  return `${lines.join('\n')}\n`;
}

/** A string as a pod's command must spell it so that Kubernetes' $(VAR) expansion gives it back. */
export function forCommand(text: string): string {
  return text.replace(/\$/g, '$$$$');
}
