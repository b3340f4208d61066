/** The supervisor behind `bpfctl run`: a policy's chain as running processes. */
export { type Chain, type ChainOptions, type ChainRoute, ChainStartError, ScaleError, startChain } from './chain.ts';
export { askSupervisor, type ControlRequest, controlPath } from './control.ts';
export { DEMO_BODIES, type DemoResult, post, runDemo } from './demo.ts';
export { AlreadyRunningError, runDir } from './lock.ts';
export type { SlotInfo, SlotState } from './slot.ts';
