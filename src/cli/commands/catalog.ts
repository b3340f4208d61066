/**
 * Every bpfctl command's usage line and what `--help` says about it. A leaf module: main.ts lists
 * every command from here and imports only the one being run (index.ts), so `bpfctl --help` and a
 * simple command do not pay for loading libbpf, esbuild or the whole runtime.
 */

interface Entry {
  /** yargs command string: name and positionals. */
  command: string;
  describe: string;
}

/** In the order `--help` lists them. */
export const CATALOG = {
  build: { command: 'build <policy>', describe: 'Validate a policy and generate its C, BPF objects and IR' },
  load: { command: 'load <target>', describe: 'Load a policy (policy.ts: build, load, attach, pin) or an object file (.bpf.o, with --pin DIR)' },
  unload: { command: 'unload <target>', describe: 'Remove a loaded policy (by name or policy.ts), or everything `load --pin DIR` pinned in DIR' },
  status: { command: 'status [policy]', describe: 'Show loaded policies, or one policy: programs, maps, routes, instances and counters' },
  top: { command: 'top <policy>', describe: 'Live requests per route (replies at the gateway) and messages per hop, per route and function' },
  route: { command: 'route <command>', describe: 'List and change routes of a loaded policy, live' },
  diff: { command: 'diff <policy-file>', describe: 'Show what apply would change in the loaded policy of the same name (changes nothing; exits 0 either way)' },
  apply: { command: 'apply <policy-file>', describe: 'Make the loaded or running policy match the file, live (bpfctl diff shows what changes)' },
  graph: { command: 'graph <policy>', describe: 'Draw a policy: a file as written, or a loaded policy by name as it runs (chains, XDP/tc rules and sets; DOT, Mermaid, SVG, PNG)' },
  pool: { command: 'pool <command>', describe: 'Shared-memory buffer pools: create, stat, reclaim, rm, ls' },
  prog: { command: 'prog <command>', describe: 'BPF programs: ls|show, attach, detach (by id N, pinned PATH, name NAME or POLICY/PROG)' },
  link: { command: 'link <command>', describe: 'BPF links: ls|show, detach (by id N, pinned PATH or POLICY/LINK)' },
  map: { command: 'map <command>', describe: 'Inspect and edit BPF maps: ls|show, dump, get, set, del, watch (by id N, pinned PATH, name NAME or POLICY/MAP)' },
  gen: { command: 'gen <command>', describe: 'Generate code from an object file (types)' },
  xdp: { command: 'xdp <command>', describe: 'XDP and tc classifiers: status with per-rule counters, explain what a frame gets' },
  set: { command: 'set <command>', describe: 'Change an XDP or tc set (prefix, address, port or MAC list) live, without a reload' },
  run: { command: 'run <policy>', describe: "Run a policy's chain (gateway + one process per function instance) and print its URLs; Ctrl-C stops it and removes everything" },
  scale: { command: 'scale <policy> <function> <instances>', describe: 'Run N instances of a function of a chain started by `bpfctl run` (0..32)' },
  agent: { command: 'agent <command>', describe: "A node's agent of a policy that spans nodes: run its share, link it to the peers, follow the policy file or ConfigMap; status" },
  k8s: { command: 'k8s <command>', describe: "Kubernetes: manifests POLICY writes what a cluster needs to run a policy's agents (DaemonSet, ConfigMap, Secret, Service)" },
  metrics: { command: 'metrics <policy>', describe: 'Serve a loaded policy\'s Prometheus metrics (routes, functions, instances, drops, pool, gateway statuses and latency, XDP rules), read from its pins on each scrape' },
} as const satisfies Record<string, Entry>;

export type CommandName = keyof typeof CATALOG;

/** The usage line and description of a command, for its module to spread into its definition. */
export function usage(name: CommandName): Entry {
  return CATALOG[name];
}
