/**
 * A policy as a picture: Graphviz DOT and Mermaid text, pure functions of a `GraphModel`
 * (deterministic, so they can be diffed and checked in). The model comes from a policy's IR
 * (`graphOfIr`: what the file says) or from a loaded policy's pins (src/deploy/policy-graph.ts:
 * what runs). Function chains: one node per function, one edge per hop of each route, coloured
 * and numbered per route so overlapping routes stay readable. Packet classifiers (XDP and tc
 * sections): one cluster per interface (and direction), its rules in first-match order with the
 * sets they look up, and where each verdict sends a packet (the kernel stack, a drop, another
 * interface, an AF_XDP socket, a packet chain). Packet chains: one cluster each, its functions in
 * visiting order and its egress, entered from every section whose rules steer into it.
 */
import type { PolicyIR } from '../ir/policy.ts';
import { type ClassifierSectionIR, describeAction, type XdpActionIR } from '../ir/xdp.ts';

export type GraphFormat = 'dot' | 'mermaid';

// Colour-blind-safe (Okabe-Ito); routes beyond eight reuse colours but keep their labels.
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'];

/** What a picture shows. `live` counts are there only when it is drawn from a running policy. */
export interface GraphModel {
  name: string;
  /** Drawn from a loaded policy's pins (routes and instances as the kernel has them). */
  running: boolean;
  gateway: { instances: number; live?: number };
  functions: { id: number; name: string; language: 'ts' | 'c'; instances: number; live?: number }[];
  /** Route versions: `id` is the route's slot in the routes map. */
  routes: { id: number; name: string; hops: number[]; draining?: boolean }[];
  classifiers: GraphClassifier[];
  /** Packet chains (L2/L3, AF_XDP), in id order; absent or empty: none to draw. */
  packetChains?: GraphPacketChain[];
}

export interface GraphPacketChain {
  name: string;
  /** The functions a frame visits, in order. */
  functions: { name: string; instances: number; language: 'c' | 'ts' | 'command' }[];
  egress: { kind: 'drop' } | { kind: 'tx'; interface: string };
  poll: boolean;
}

export interface GraphClassifier {
  /** 'XDP', 'tc ingress' or 'tc egress'. */
  hook: string;
  interface: string;
  mode?: string;
  rules: { name: string; match: string; action: XdpActionIR; sets: string[]; packets?: number }[];
  default: XdpActionIR;
  defaultPackets?: number;
  sets: { name: string; kind: string; size?: number }[];
}

/** The set names a rule's match looks up (`{ set: NAME }` anywhere in it). */
function setsOfMatch(match: unknown): string[] {
  const out = new Set<string>();
  const walk = (v: unknown) => {
    if (!v || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v)) {
      if (k === 'set' && typeof x === 'string') out.add(x);
      else walk(x);
    }
  };
  walk(match);
  return [...out].sort();
}

/** Where a section runs: 'XDP', or 'tc ingress' / 'tc egress'. */
export function hookOf(s: ClassifierSectionIR): string {
  return 'direction' in s ? `tc ${String(s.direction)}` : 'XDP';
}

/** A classification section (XDP or tc) of the IR as a cluster of the picture (counters and sizes as given). */
export function classifierOfSection(s: ClassifierSectionIR, live?: { packets?: (number | undefined)[]; defaultPackets?: number; mode?: string; setSizes?: Record<string, number> }): GraphClassifier {
  return {
    hook: hookOf(s),
    interface: s.interface,
    mode: live?.mode ?? ('mode' in s ? String(s.mode) : undefined),
    rules: s.rules.map((r, i) => ({ name: r.name, match: r.summary.replace(/ -> .*$/, ''), action: r.action, sets: setsOfMatch(r.match), packets: live?.packets?.[i] })),
    default: s.default,
    defaultPackets: live?.defaultPackets,
    sets: s.sets.map((x) => ({ name: x.name, kind: x.kind, size: live?.setSizes?.[x.name] ?? (live ? undefined : x.elements.length) })),
  };
}

/** The picture of a policy file. */
export function graphOfIr(ir: PolicyIR): GraphModel {
  return {
    name: ir.name,
    running: false,
    gateway: { instances: ir.gateway.instances },
    functions: ir.functions.map((f) => ({ id: f.id, name: f.name, language: f.language, instances: f.instances })),
    routes: ir.routes.map((r) => ({ id: r.id, name: r.name, hops: [...r.hops] })),
    classifiers: [...ir.xdp, ...(ir.tc ?? [])].map((s) => classifierOfSection(s)),
    ...(ir.packet?.chains.length ? { packetChains: packetChainsOfIr(ir) } : {}),
  };
}

/** The packet chains of a policy's IR, with function names and egress interfaces resolved (none without a packet part). */
export function packetChainsOfIr(ir: Pick<PolicyIR, 'packet'>): GraphPacketChain[] {
  const p = ir.packet;
  if (!p) return [];
  return p.chains.map((c) => ({
    name: c.name,
    functions: c.functions.map((id) => {
      const f = p.functions[id]!;
      return { name: f.name, instances: f.instances, language: f.language };
    }),
    egress: c.egress.kind === 'tx' ? { kind: 'tx', interface: p.ports[c.egress.port]!.interface } : { kind: 'drop' },
    poll: c.poll,
  }));
}

interface Edge {
  from: number;
  to: number;
  route: number;
  label: string;
  draining: boolean;
}

function edges(g: GraphModel): Edge[] {
  const out: Edge[] = [];
  for (const r of g.routes) {
    const path = [0, ...r.hops, 0];
    for (let i = 0; i + 1 < path.length; i++) {
      out.push({ from: path[i]!, to: path[i + 1]!, route: r.id, label: `${r.name} ${i + 1}${r.draining ? ' (draining)' : ''}`, draining: r.draining ?? false });
    }
  }
  return out;
}

/** A policy with only classifiers has no gateway to draw. */
const hasChain = (g: GraphModel) => g.functions.length > 0 || g.routes.length > 0;

function gatewayLabel(g: GraphModel, sep: string): string {
  const { instances, live } = g.gateway;
  if (live !== undefined) return `gateway${sep}${live}/${instances} live`;
  return `gateway${instances > 1 ? ` x${instances}` : ''}`;
}

function functionLabel(f: GraphModel['functions'][number], open: string, close: string, sep: string): string {
  if (f.live !== undefined) return `${f.name}${sep}${f.live}/${f.instances} live${f.language === 'c' ? ', C' : ''}`;
  const extra = [f.instances > 1 ? `x${f.instances}` : '', f.language === 'c' ? 'C' : ''].filter(Boolean).join(', ');
  return extra ? `${f.name}${open}${extra}${close}` : f.name;
}

/** Where a verdict sends a packet, as a node of its section: one node per distinct verdict. */
function outcome(a: XdpActionIR, c: GraphClassifier): { key: string; label: string; shape: string } {
  const iface = c.interface;
  switch (a.kind) {
    case 'pass':
      // Passing at egress lets the host's packet leave; everywhere else it goes up the stack.
      return c.hook === 'tc egress' ? { key: 'pass', label: `sent on ${iface}`, shape: 'cds' } : { key: 'pass', label: 'kernel stack', shape: 'ellipse' };
    case 'drop':
      return { key: 'drop', label: 'dropped', shape: 'octagon' };
    case 'tx':
      return { key: 'tx', label: `back out of ${iface}`, shape: 'cds' };
    case 'redirect':
      return { key: `redirect_${a.ifname}`, label: `out of ${a.ifname}`, shape: 'cds' };
    case 'xsk':
      return { key: `xsk_${a.group}`, label: `AF_XDP ${a.group}`, shape: 'cylinder' };
    case 'chain':
      return { key: `chain_${a.name}`, label: `packet chain ${a.name}`, shape: 'cylinder' };
  }
}

/** Node ids of packet chain `i`: its hops, then its egress. */
const chainNodes = (c: GraphPacketChain, i: number) => [...c.functions.map((_, j) => `pc${i}_h${j}`), `pc${i}_out`];

function packetChainTitle(c: GraphPacketChain): string {
  return `packet chain ${c.name}${c.poll ? ' (busy-poll)' : ''}`;
}

function packetFunctionLabel(f: GraphPacketChain['functions'][number], sep: string): string {
  // C is the packet default (unmarked); a TypeScript NF is the slow path worth seeing in the graph.
  const extra = [f.instances > 1 ? `x${f.instances}` : '', f.language === 'command' ? 'command' : f.language === 'ts' ? 'TS' : ''].filter(Boolean).join(', ');
  return extra ? `${f.name}${sep}${extra}` : f.name;
}

const packetEgress = (c: GraphPacketChain) => (c.egress.kind === 'tx' ? { label: `out of ${c.egress.interface}`, shape: 'cds' } : { label: 'dropped', shape: 'octagon' });

/** Every edge from a classifier's outcome node into a packet chain: [from node, chain index]. */
function chainEntries(g: GraphModel): [string, number][] {
  const out: [string, number][] = [];
  const chains = g.packetChains ?? [];
  g.classifiers.forEach((c, i) => {
    const names = new Set([...c.rules.map((r) => r.action), c.default].flatMap((a) => (a.kind === 'chain' ? [a.name] : [])));
    for (const name of [...names].sort()) {
      const at = chains.findIndex((x) => x.name === name);
      if (at >= 0) out.push([`${prefixOf(c, i)}_out_${slug(`chain_${name}`)}`, at]);
    }
  });
  return out;
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_');
const packets = (n: number | undefined) => (n === undefined ? '' : `${n} packet${n === 1 ? '' : 's'}`);

function dotString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

function nodeId(id: number): string {
  return id === 0 ? 'gateway' : `fn${id}`;
}

function title(g: GraphModel): string {
  return g.running ? `policy ${g.name} (running, from its pins)` : `policy ${g.name}`;
}

/** Node id prefix of a classifier cluster, and what enters it. */
const prefixOf = (c: GraphClassifier, i: number) => `${c.hook === 'XDP' ? 'xdp' : 'tc'}${i}`;
const entering = (c: GraphClassifier) => (c.hook === 'tc egress' ? 'packets out' : 'frames in');

function classifierDot(c: GraphClassifier, i: number): string[] {
  const p = prefixOf(c, i);
  const lines = [`\tsubgraph ${dotString(`cluster_${p}`)} {`, `\t\tlabel=${dotString(`${c.hook} on ${c.interface}${c.mode ? ` (${c.mode})` : ''}`)};`, '\t\tstyle="rounded";'];
  lines.push(`\t\t${p}_in [label=${dotString(`${c.interface}\n${entering(c)}`)}, shape=cds];`);
  c.rules.forEach((r, j) => {
    const label = [`#${j} ${r.name}`, r.match, `-> ${describeAction(r.action)}`, packets(r.packets)].filter(Boolean).join('\n');
    lines.push(`\t\t${p}_r${j} [label=${dotString(label)}];`);
  });
  lines.push(`\t\t${p}_default [label=${dotString(['default', `-> ${describeAction(c.default)}`, packets(c.defaultPackets)].filter(Boolean).join('\n'))}, style="rounded,dashed"];`);
  for (const s of c.sets) lines.push(`\t\t${p}_set_${slug(s.name)} [label=${dotString(`set ${s.name}\n${s.kind}${s.size === undefined ? '' : `, ${s.size} element${s.size === 1 ? '' : 's'}`}`)}, shape=folder];`);
  const outs = new Map<string, ReturnType<typeof outcome>>();
  for (const a of [...c.rules.map((r) => r.action), c.default]) {
    const o = outcome(a, c);
    outs.set(o.key, o);
  }
  for (const o of [...outs.values()].sort((a, b) => a.key.localeCompare(b.key))) lines.push(`\t\t${p}_out_${slug(o.key)} [label=${dotString(o.label)}, shape=${o.shape}];`);
  lines.push('\t}');
  const chain = [`${p}_in`, ...c.rules.map((_, j) => `${p}_r${j}`), `${p}_default`];
  for (let j = 0; j + 1 < chain.length; j++) lines.push(`\t${chain[j]} -> ${chain[j + 1]}${j > 0 ? ' [label="no match", style=dashed]' : ''};`);
  c.rules.forEach((r, j) => {
    lines.push(`\t${p}_r${j} -> ${p}_out_${slug(outcome(r.action, c).key)} [label="match"];`);
    for (const s of r.sets) lines.push(`\t${p}_r${j} -> ${p}_set_${slug(s)} [style=dotted, arrowhead=none];`);
  });
  lines.push(`\t${p}_default -> ${p}_out_${slug(outcome(c.default, c).key)};`);
  return lines;
}

export function toDot(src: PolicyIR | GraphModel): string {
  const g = modelOf(src);
  const lines = [
    `// generated by bpfctl from policy ${g.name}${g.running ? ' as it runs' : ''}`,
    `digraph ${dotString(g.name)} {`,
    '\trankdir=LR;',
    `\tlabel=${dotString(title(g))};`,
    '\tlabelloc=t;',
    '\tnode [shape=box, style="rounded", fontname="Helvetica"];',
    '\tedge [fontname="Helvetica", fontsize=10];',
  ];
  if (hasChain(g)) {
    lines.push(`\tgateway [label=${dotString(gatewayLabel(g, '\n'))}, shape=ellipse];`);
    for (const f of g.functions) lines.push(`\t${nodeId(f.id)} [label=${dotString(functionLabel(f, '\n', '', '\n'))}];`);
    for (const e of edges(g)) {
      const color = PALETTE[e.route % PALETTE.length]!;
      lines.push(`\t${nodeId(e.from)} -> ${nodeId(e.to)} [label=${dotString(e.label)}, color=${dotString(color)}, fontcolor=${dotString(color)}${e.draining ? ', style=dashed' : ''}];`);
    }
  }
  g.classifiers.forEach((c, i) => void lines.push(...classifierDot(c, i)));
  (g.packetChains ?? []).forEach((c, i) => {
    const nodes = chainNodes(c, i);
    const out = packetEgress(c);
    lines.push(`\tsubgraph ${dotString(`cluster_pc${i}`)} {`, `\t\tlabel=${dotString(packetChainTitle(c))};`, '\t\tstyle="rounded";');
    c.functions.forEach((f, j) => void lines.push(`\t\t${nodes[j]} [label=${dotString(packetFunctionLabel(f, '\n'))}];`));
    lines.push(`\t\tpc${i}_out [label=${dotString(out.label)}, shape=${out.shape}];`, '\t}');
    for (let j = 0; j + 1 < nodes.length; j++) lines.push(`\t${nodes[j]} -> ${nodes[j + 1]};`);
  });
  for (const [from, i] of chainEntries(g)) lines.push(`\t${from} -> ${chainNodes(g.packetChains![i]!, i)[0]} [label="AF_XDP"];`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

function mermaidText(s: string): string {
  return `"${s.replace(/"/g, '#quot;')}"`;
}

/** Mermaid node shapes for the outcome nodes. */
const MERMAID_SHAPE: Record<string, [string, string]> = { ellipse: ['([', '])'], octagon: ['{{', '}}'], cds: ['>', ']'], cylinder: ['[(', ')]'] };

export function toMermaid(src: PolicyIR | GraphModel): string {
  const g = modelOf(src);
  const lines = [`%% generated by bpfctl from policy ${g.name}${g.running ? ' as it runs' : ''}`, 'flowchart LR'];
  // Links are styled by their index: the chain's come first, so their numbering is the same with
  // or without classifiers.
  const links: string[] = [];
  const styles: string[] = [];
  if (hasChain(g)) {
    lines.push(`\tgateway((${mermaidText(gatewayLabel(g, '<br/>'))}))`);
    for (const f of g.functions) lines.push(`\t${nodeId(f.id)}[${mermaidText(functionLabel(f, ' (', ')', '<br/>'))}]`);
    for (const e of edges(g)) {
      styles.push(`\tlinkStyle ${links.length} stroke:${PALETTE[e.route % PALETTE.length]}${e.draining ? ',stroke-dasharray:4' : ''}`);
      links.push(`\t${nodeId(e.from)} ${e.draining ? '-.->' : '-->'}|${mermaidText(e.label)}| ${nodeId(e.to)}`);
    }
  }
  g.classifiers.forEach((c, i) => {
    const p = prefixOf(c, i);
    lines.push(`\tsubgraph ${p}[${mermaidText(`${c.hook} on ${c.interface}${c.mode ? ` (${c.mode})` : ''}`)}]`);
    lines.push(`\t\t${p}_in>${mermaidText(`${c.interface}: ${entering(c)}`)}]`);
    c.rules.forEach((r, j) => void lines.push(`\t\t${p}_r${j}[${mermaidText([`#${j} ${r.name}`, r.match, `-> ${describeAction(r.action)}`, packets(r.packets)].filter(Boolean).join('<br/>'))}]`));
    lines.push(`\t\t${p}_default[${mermaidText(['default', `-> ${describeAction(c.default)}`, packets(c.defaultPackets)].filter(Boolean).join('<br/>'))}]`);
    for (const s of c.sets) lines.push(`\t\t${p}_set_${slug(s.name)}[(${mermaidText(`set ${s.name}: ${s.kind}${s.size === undefined ? '' : `, ${s.size}`}`)})]`);
    const outs = new Map<string, ReturnType<typeof outcome>>();
    for (const a of [...c.rules.map((r) => r.action), c.default]) {
      const o = outcome(a, c);
      outs.set(o.key, o);
    }
    for (const o of [...outs.values()].sort((a, b) => a.key.localeCompare(b.key))) {
      const [open, close] = MERMAID_SHAPE[o.shape]!;
      lines.push(`\t\t${p}_out_${slug(o.key)}${open}${mermaidText(o.label)}${close}`);
    }
    lines.push('\tend');
    const chain = [`${p}_in`, ...c.rules.map((_, j) => `${p}_r${j}`), `${p}_default`];
    for (let j = 0; j + 1 < chain.length; j++) links.push(j > 0 ? `\t${chain[j]} -.->|"no match"| ${chain[j + 1]}` : `\t${chain[j]} --> ${chain[j + 1]}`);
    c.rules.forEach((r, j) => {
      links.push(`\t${p}_r${j} -->|"match"| ${p}_out_${slug(outcome(r.action, c).key)}`);
      for (const s of r.sets) links.push(`\t${p}_r${j} -.- ${p}_set_${slug(s)}`);
    });
    links.push(`\t${p}_default --> ${p}_out_${slug(outcome(c.default, c).key)}`);
  });
  (g.packetChains ?? []).forEach((c, i) => {
    const nodes = chainNodes(c, i);
    const out = packetEgress(c);
    const [open, close] = MERMAID_SHAPE[out.shape]!;
    lines.push(`\tsubgraph pc${i}[${mermaidText(packetChainTitle(c))}]`);
    c.functions.forEach((f, j) => void lines.push(`\t\t${nodes[j]}[${mermaidText(packetFunctionLabel(f, '<br/>'))}]`));
    lines.push(`\t\tpc${i}_out${open}${mermaidText(out.label)}${close}`, '\tend');
    for (let j = 0; j + 1 < nodes.length; j++) links.push(`\t${nodes[j]} --> ${nodes[j + 1]}`);
  });
  for (const [from, i] of chainEntries(g)) links.push(`\t${from} -->|"AF_XDP"| ${chainNodes(g.packetChains![i]!, i)[0]}`);
  return `${[...lines, ...links, ...styles].join('\n')}\n`;
}

const isModel = (x: PolicyIR | GraphModel): x is GraphModel => 'classifiers' in x;
const modelOf = (x: PolicyIR | GraphModel): GraphModel => (isModel(x) ? x : graphOfIr(x));

const RENDERERS: Record<GraphFormat, (g: GraphModel) => string> = { dot: toDot, mermaid: toMermaid };

/** DOT or Mermaid text of a policy file's IR or of a model (a running policy's). */
export function renderGraph(src: PolicyIR | GraphModel, format: GraphFormat): string {
  return RENDERERS[format](modelOf(src));
}
