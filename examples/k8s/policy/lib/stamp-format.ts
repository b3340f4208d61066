/** `[/hello @ node-a]`: the route, and the node (BPFCTL_NODE, which the DaemonSet sets). */
export function stampOf(route: string): string {
  const node = process.env.BPFCTL_NODE;
  return node ? `[${route} @ ${node}]` : `[${route}]`;
}
