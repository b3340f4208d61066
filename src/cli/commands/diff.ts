/**
 * `bpfctl diff POLICY_FILE`: what `bpfctl apply POLICY_FILE` would change in the loaded policy of
 * the same name, without changing anything.
 *
 * Exits 0 whether or not there are changes (unlike `kubectl diff`, which exits 1 on changes): a
 * non-zero exit here always means an error. Scripts read `--json` (`changes`, `live`, `loaded`).
 * A policy that is not loaded diffs against nothing: every function, route and XDP section is
 * added, which is what `apply` would do (load it). That needs no privileges when nothing is
 * pinned at all, so it works for any user.
 */
import { hashHandlers } from '../../deploy/code-hash.ts';
import { diffPolicies, type PolicyView, viewOfIr } from '../../deploy/diff.ts';
import { renderDiff } from '../../deploy/diff-render.ts';
import { listPolicies, loadedManifest } from '../../deploy/loaded.ts';
import type { PolicyIR } from '../../ir/policy.ts';
import { loadPolicyFile } from '../../load/index.ts';
import { type Args, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

export const diffCommand = defineCommand({
  ...usage('diff'),
  builder: (y) => y.positional('policy-file', { type: 'string', demandOption: true, describe: 'policy file (policy.ts)' }),
  handler: async (argv: Args<{ policyFile: string }>) => {
    const ir = await loadPolicyFile(argv.policyFile);
    const hashes = hashHandlers(argv.policyFile, ir);
    // Not loaded (which an unprivileged user can tell when nothing is pinned at all; a pin root
    // it may not read is permission denied): apply would load it, so the diff is everything.
    const loaded = listPolicies().includes(ir.name);
    let live: PolicyView;
    if (loaded) {
      // Manifests written before code hashes were recorded have none: their functions' code is unknown.
      const m = loadedManifest(ir.name);
      live = viewOfIr(m.ir, m.codeHashes);
    } else live = { ...viewOfIr(ir), functions: [], routes: [], xdp: [] };
    const d = diffPolicies(live, viewOfIr(ir, hashes));
    if (argv.out.json) return void argv.out.printJson({ ...d, loaded });
    if (!loaded) argv.out.line(`policy ${ir.name} is not loaded: bpfctl apply ${argv.policyFile} would load it (${describe(ir)})`);
    argv.out.line(renderDiff(d));
  },
});

function describe(ir: PolicyIR): string {
  const n = (k: number, w: string) => `${k} ${w}${k === 1 ? '' : 's'}`;
  const parts = [n(ir.functions.length, 'function'), n(ir.routes.length, 'route')];
  if (ir.xdp.length) parts.push(`XDP on ${ir.xdp.map((x) => x.interface).join(', ')}`);
  return parts.join(', ');
}
