// Placeholder owned by the XDP work (issue 5): validation and lowering of `xdp` sections.
import type { XdpSectionSpec } from '../dsl/xdp.ts';

export interface XdpSectionIR {
  interface: string;
}

/** Validates `xdp` sections; `path` is the policy path prefix for errors, e.g. "xdp". */
export function lowerXdpSections(specs: readonly XdpSectionSpec[] | undefined, _path: string): XdpSectionIR[] {
  return (specs ?? []).map((s) => ({ interface: s.interface }));
}
