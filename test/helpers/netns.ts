/**
 * Network namespaces for tests (the aya guard pattern): each test that needs a network gets its
 * own pair of namespaces joined by a veth pair, and `destroy()` removes them whatever happened.
 * Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking range), only inside these namespaces.
 */
import { sh } from './sh.ts';

let counter = 0;

export interface NetnsPair {
  /** Namespace names, e.g. bt-1234-1a / bt-1234-1b. */
  readonly nsA: string;
  readonly nsB: string;
  /** veth ends: ifA lives in nsA, ifB in nsB. */
  readonly ifA: string;
  readonly ifB: string;
  readonly ipA: string;
  readonly ipB: string;
  readonly ip6A: string;
  readonly ip6B: string;
  /** Run a command inside a namespace. */
  exec(ns: string, cmd: string, args: readonly string[], opts?: { allowFail?: boolean }): string;
  destroy(): void;
}

export function createNetnsPair(tag = 'x'): NetnsPair {
  const n = ++counter;
  const base = `bt${process.pid % 100000}${tag}${n}`.slice(0, 11);
  const nsA = `${base}a`;
  const nsB = `${base}b`;
  const ifA = `${base}a`;
  const ifB = `${base}b`;
  const sub = 18 + (n % 2);
  const ipA = `198.${sub}.${n % 250}.1`;
  const ipB = `198.${sub}.${n % 250}.2`;
  const ip6A = `fd00:bf:${n.toString(16)}::1`;
  const ip6B = `fd00:bf:${n.toString(16)}::2`;
  const destroy = () => {
    sh('ip', ['netns', 'del', nsA], { allowFail: true });
    sh('ip', ['netns', 'del', nsB], { allowFail: true });
    sh('ip', ['link', 'del', ifA], { allowFail: true });
  };
  try {
    sh('ip', ['netns', 'add', nsA]);
    sh('ip', ['netns', 'add', nsB]);
    sh('ip', ['link', 'add', ifA, 'netns', nsA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
    for (const [ns, ifn, ip, ip6] of [
      [nsA, ifA, ipA, ip6A],
      [nsB, ifB, ipB, ip6B],
    ] as const) {
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', ifn]);
      sh('ip', ['-n', ns, '-6', 'addr', 'add', `${ip6}/64`, 'dev', ifn, 'nodad']);
      sh('ip', ['-n', ns, 'link', 'set', ifn, 'up']);
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    nsA,
    nsB,
    ifA,
    ifB,
    ipA,
    ipB,
    ip6A,
    ip6B,
    exec: (ns, cmd, args, opts) => sh('ip', ['netns', 'exec', ns, cmd, ...args], opts),
    destroy,
  };
}

export interface NetnsNode {
  /** Namespace name (also the name of its veth end inside it). */
  readonly ns: string;
  readonly ip: string;
}

export interface NetnsBridge {
  /** The namespace holding the bridge every node is plugged into. */
  readonly switchNs: string;
  readonly nodes: readonly NetnsNode[];
  /**
   * Unplug node i and remove its namespace, as a node that disappears would. Processes inside
   * keep the namespace alive (`ip netns del` only drops its name), so its veth is deleted too:
   * they are cut off, not merely renamed.
   */
  deleteNode(i: number): void;
  /** Make node i again after deleteNode, with the same name and address. */
  recreateNode(i: number): void;
  destroy(): void;
}

/**
 * `count` namespaces on one Ethernet segment: each has a veth whose other end is a port of a bridge
 * in a separate switch namespace, so nodes reach each other directly (no routing) and deleting
 * one node's namespace unplugs only that node. Addresses 198.19.200+n.x/24.
 */
export function createNetnsBridge(count: number, tag = 'br'): NetnsBridge {
  const n = ++counter;
  const base = `bt${process.pid % 100000}${tag}${n}`.slice(0, 11);
  const switchNs = `${base}s`;
  const subnet = `198.19.${200 + (n % 50)}`;
  const nodes: NetnsNode[] = Array.from({ length: count }, (_, i) => ({ ns: `${base}${i}`, ip: `${subnet}.${i + 1}` }));
  const plug = (i: number) => {
    const node = nodes[i]!;
    sh('ip', ['netns', 'add', node.ns]);
    sh('ip', ['link', 'add', node.ns, 'netns', node.ns, 'type', 'veth', 'peer', 'name', `${node.ns}p`, 'netns', switchNs]);
    sh('ip', ['-n', switchNs, 'link', 'set', `${node.ns}p`, 'master', 'br0', 'up']);
    sh('ip', ['-n', node.ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', node.ns, 'addr', 'add', `${node.ip}/24`, 'dev', node.ns]);
    sh('ip', ['-n', node.ns, 'link', 'set', node.ns, 'up']);
  };
  const destroy = () => {
    for (const node of nodes) sh('ip', ['netns', 'del', node.ns], { allowFail: true });
    sh('ip', ['netns', 'del', switchNs], { allowFail: true });
  };
  try {
    sh('ip', ['netns', 'add', switchNs]);
    sh('ip', ['-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', switchNs, 'link', 'set', 'br0', 'up']);
    for (let i = 0; i < count; i++) plug(i);
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    switchNs,
    nodes,
    deleteNode: (i) => {
      sh('ip', ['-n', switchNs, 'link', 'del', `${nodes[i]!.ns}p`]);
      sh('ip', ['netns', 'del', nodes[i]!.ns]);
    },
    recreateNode: (i) => plug(i),
    destroy,
  };
}
