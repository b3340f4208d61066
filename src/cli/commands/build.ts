/**
 * `bpfctl build POLICY`: policy.ts -> IR -> C -> BPF objects, written to one directory so they can
 * be inspected, diffed and loaded later. `--emit` narrows the output to one stage.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { chainSources } from '../../codegen/chain/index.ts';
import { generateTc, generateXdp } from '../../codegen/xdp/index.ts';
import { compileBpf } from '../../compile/index.ts';
import type { PolicyIR } from '../../ir/policy.ts';
import { loadPolicyFile } from '../../load/index.ts';
import { buildFunctionCode } from '../../runtime/function-code.ts';
import { packetFunctionCode } from '../../runtime/packet/runtime.ts';
import { usage } from './catalog.ts';
import type { Args, Command } from './types.ts';

const EMITS = ['all', 'ir', 'c', 'obj'] as const;
type Emit = (typeof EMITS)[number];

interface BuildArgs {
  policy: string;
  output?: string;
  emit: Emit;
}

/**
 * Every C file a policy builds from: the chain dataplane (its generated header, then the fixed
 * program, the same for every policy), then one XDP program per xdp section and one tc program
 * per tc section.
 */
export function generatePolicySources(ir: PolicyIR): { file: string; source: string }[] {
  return [...chainSources(), ...ir.xdp.map((_, i) => generateXdp(ir, i)), ...(ir.tc ?? []).map((_, i) => generateTc(ir, i))];
}

export const buildCommand: Command = {
  ...usage('build'),
  builder: (y: Argv) =>
    y
      .positional('policy', { type: 'string', demandOption: true, describe: 'policy.ts file' })
      .option('output', { alias: 'o', type: 'string', describe: 'Output directory (default build/<policy name>)' })
      .option('emit', {
        choices: EMITS,
        default: 'all' as Emit,
        describe: 'all: write IR, C and objects; ir / c: print that stage to stdout (or write it with -o); obj: C and objects only',
      }),
  handler: async (raw) => {
    const argv = raw as Args<BuildArgs>;
    const { out } = argv;
    const handlers: Record<string, unknown>[] = [];
    const ir = await loadPolicyFile(argv.policy);
    // Every handler is checked as `run` will use it: it exists, TypeScript compiles and has a
    // default export, C compiles with the runtime. Nothing is written before that passes.
    if (argv.emit === 'all' || argv.emit === 'obj') {
      for (const f of ir.functions) {
        out.progress(`checking ${f.language === 'c' ? 'C' : 'TypeScript'} function ${f.name}`);
        const code = await buildFunctionCode(argv.policy, f);
        handlers.push({ kind: 'handler', file: code.source, function: f.name, built: code.exe ?? code.handler });
      }
      for (const f of ir.packet?.functions ?? []) {
        out.progress(`checking packet function ${f.name}`);
        const code = await packetFunctionCode(f);
        handlers.push({ kind: 'packet-handler', file: f.handler ?? f.command![0]!, function: f.name, built: code.env.BPFCTL_PKT_HANDLER ?? code.argv[0]! });
      }
    }
    const dir = resolve(argv.output ?? join('build', ir.name));
    const toStdout = argv.output === undefined && (argv.emit === 'ir' || argv.emit === 'c');
    if (toStdout) {
      if (argv.emit === 'ir') out.stdout.write(`${JSON.stringify(ir, null, 2)}\n`);
      else for (const s of generatePolicySources(ir)) out.stdout.write(s.source);
      return;
    }
    mkdirSync(dir, { recursive: true });
    const written: Record<string, unknown>[] = [];
    const write = (file: string, text: string, kind: string) => {
      writeFileSync(join(dir, file), text);
      written.push({ kind, file: join(dir, file) });
    };
    if (argv.emit === 'all' || argv.emit === 'ir') write('ir.json', `${JSON.stringify(ir, null, 2)}\n`, 'ir');
    if (argv.emit !== 'ir') {
      for (const s of generatePolicySources(ir)) {
        write(s.file, s.source, s.file.endsWith('.h') ? 'h' : 'c');
        if (argv.emit === 'c' || s.file.endsWith('.h')) continue;
        out.progress(`compiling ${s.file}`);
        const res = compileBpf(join(dir, s.file));
        // The cache's copy is content-addressed; the build directory gets the plain name.
        const obj = join(dir, s.file.replace(/\.c$/, '.o'));
        copyFileSync(res.objectPath, obj);
        written.push({ kind: 'obj', file: obj, cached: res.cached });
      }
    }
    written.push(...handlers);
    if (out.json) out.printJson({ policy: ir.name, hash: ir.hash, dir, files: written });
    else out.table(written, ['kind', 'file'], `policy ${ir.name} (hash ${ir.hash.slice(0, 12)})`);
  },
};
