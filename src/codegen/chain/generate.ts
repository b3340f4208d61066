/**
 * IR -> the chain dataplane's C source. A pure, deterministic function of the IR: the same policy
 * always gives byte-identical C (golden files in test/golden/chain check it).
 */
import type { PolicyIR } from '../../ir/policy.ts';
import { joinBlocks } from './c-text.ts';
import { mapDefinitions } from './maps-c.ts';
import { header, includes, limits, structs } from './prelude.ts';
import { type DropVerdict, skMsgProgram } from './sk-msg.ts';

export interface GeneratedSource {
  /** `<policy>.chain.bpf.c` */
  fileName: string;
  /** Same as fileName (the name docs/internals.md uses). */
  file: string;
  source: string;
}

export interface ChainOptions {
  /** Verdict for dropped descriptors; the default is the one that keeps senders working. */
  dropVerdict?: DropVerdict;
}

export const DEFAULT_DROP_VERDICT: DropVerdict = 'dead-letter';

/** Program names in the object (the loader opens them by name). */
export const CHAIN_PROGRAMS = { msg: 'chain_msg' } as const;

export function chainFileName(ir: Pick<PolicyIR, 'name'>): string {
  return `${ir.name}.chain.bpf.c`;
}

export function generateChain(ir: PolicyIR, opts: ChainOptions = {}): GeneratedSource {
  const source = joinBlocks([
    header(ir),
    includes(),
    limits(),
    structs(),
    mapDefinitions(),
    skMsgProgram(opts.dropVerdict ?? DEFAULT_DROP_VERDICT),
    'char LICENSE[] SEC("license") = "Dual MIT/GPL";',
  ]);
  const fileName = chainFileName(ir);
  return { fileName, file: fileName, source };
}
