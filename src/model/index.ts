/**
 * The reference model of classification sections (docs/xdp-model.md): what the generated program
 * does with a frame, computed in TypeScript from the IR and the sets. Pure; `bpfctl xdp explain`
 * prints it, and test/kernel/xdp-model.test.ts holds it to the kernel's answers.
 */
export { type CheckResult, type CounterMove, compileModel, evaluate, type Hit, ModelHookError, type ModelOptions, type Outcome, type RuleTry, type SectionModel } from './evaluate.ts';
export { ip4Text, ip6Text, type Layer, macText, type ParseResult, parseFrame, type Pkt } from './frame.ts';
export { type Decision, HOOK_MODELS, type Hook, type HookModel, MODEL_HOOKS, type ModelEnv, malformedVerdict } from './hooks.ts';
export { type Check, compileRule, guardChecks, MATCH_MODEL, protoText, ruleMatches } from './match.ts';
export { type PcapFrame, PcapError, readPcap, writePcap } from './pcap.ts';
export { compileSets, ModelSetError, type ModelSet, type SetContents } from './sets.ts';
