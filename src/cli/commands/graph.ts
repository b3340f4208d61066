/**
 * `bpfctl graph POLICY`: a policy's function chains and XDP sections as Graphviz DOT or Mermaid
 * text, or rendered to SVG/PNG by Graphviz's `dot` when it is installed. POLICY is a file (drawn
 * as written; needs no privileges), or a loaded policy's name (drawn as it runs, from its pins).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { graphOfIr, renderGraph } from '../../codegen/graph.ts';
import { policyGraph } from '../../deploy/policy-graph.ts';
import { BpfctlError } from '../../errors.ts';
import { loadPolicyFile } from '../../load/index.ts';
import type { Args, Command } from './types.ts';
import { usage } from './catalog.ts';

const FORMATS = ['dot', 'mermaid', 'svg', 'png'] as const;
type Format = (typeof FORMATS)[number];

interface GraphArgs {
  policy: string;
  format?: Format;
  output?: string;
}

/** Graphviz is missing or failed to render. */
export class GraphvizError extends BpfctlError {
  readonly stderr: string;
  constructor(message: string, stderr = '') {
    super('E_GRAPHVIZ', message);
    this.stderr = stderr;
  }
  override detail(): string {
    return this.stderr ? `${this.message}\n${this.stderr}` : this.message;
  }
}

/** Renders DOT text with Graphviz. @throws GraphvizError when `dot` is not installed or fails. */
export function renderWithDot(dot: string, format: 'svg' | 'png', dotBinary = process.env.BPFCTL_DOT ?? 'dot'): Buffer {
  const r = spawnSync(dotBinary, [`-T${format}`], { input: dot, maxBuffer: 64 << 20 });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new GraphvizError(
      missing
        ? `cannot render ${format}: Graphviz '${dotBinary}' is not installed (apt-get install graphviz), or use --format dot|mermaid`
        : `cannot run ${dotBinary}: ${r.error.message}`,
    );
  }
  if (r.status !== 0) throw new GraphvizError(`${dotBinary} -T${format} failed (exit ${r.status})`, r.stderr.toString());
  return r.stdout;
}

function formatFromFile(file: string | undefined): Format | undefined {
  const ext = file ? extname(file).slice(1).toLowerCase() : '';
  if (ext === 'gv') return 'dot';
  if (ext === 'mmd') return 'mermaid';
  return (FORMATS as readonly string[]).includes(ext) ? (ext as Format) : undefined;
}

export const graphCommand: Command = {
  ...usage('graph'),
  builder: (y: Argv) =>
    y
      .positional('policy', { type: 'string', demandOption: true, describe: 'policy.ts file, or the name of a loaded policy (drawn as it runs)' })
      .option('format', { alias: 'f', choices: FORMATS, describe: 'Output format (default: from the -o extension, else dot)' })
      .option('output', { alias: 'o', type: 'string', describe: 'Write to this file instead of stdout (required for png)' }),
  handler: async (raw) => {
    const argv = raw as Args<GraphArgs>;
    const { out } = argv;
    // A name (no path, no extension) is a loaded policy, drawn from its pins: the picture is
    // what runs (routes as the kernel routes, live instances, XDP counters), not what a file said.
    const byName = !/[/.]/.test(argv.policy);
    const model = byName ? policyGraph(argv.policy) : graphOfIr(await loadPolicyFile(argv.policy));
    const format: Format = argv.format ?? formatFromFile(argv.output) ?? 'dot';
    let data: string | Buffer;
    if (format === 'svg' || format === 'png') {
      if (format === 'png' && argv.output === undefined) throw new BpfctlError('E_USAGE', 'PNG is binary: give a file with -o FILE');
      data = renderWithDot(renderGraph(model, 'dot'), format);
    } else {
      data = renderGraph(model, format);
    }
    if (argv.output !== undefined) {
      const file = resolve(argv.output);
      writeFileSync(file, data);
      if (out.json) out.printJson({ policy: model.name, running: model.running, format, file });
      else out.progress(`wrote ${format} graph of ${model.name}${model.running ? ' as it runs' : ''} to ${file}`);
      return;
    }
    if (out.json) out.printJson({ policy: model.name, running: model.running, format, text: data.toString() });
    else out.stdout.write(data.toString());
  },
};
