// Placeholder owned by the XDP work (issue 5): the user-facing types of a policy's `xdp` sections.
export interface XdpSectionSpec {
  interface: string;
  [key: string]: unknown;
}
