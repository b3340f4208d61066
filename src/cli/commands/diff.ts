/**
 * `bpfctl diff POLICY_FILE`: what `bpfctl apply POLICY_FILE` would change in the loaded policy of
 * the same name, without changing anything.
 *
 * Exits 0 whether or not there are changes (unlike `kubectl diff`, which exits 1 on changes): a
 * non-zero exit here always means an error. Scripts read `--json` (`changes`, `live`).
 */
import { hashHandlers } from '../../deploy/code-hash.ts';
import { diffPolicies, viewOfIr } from '../../deploy/diff.ts';
import { renderDiff } from '../../deploy/diff-render.ts';
import { loadedManifest } from '../../deploy/policy.ts';
import { loadPolicyFile } from '../../load/index.ts';
import { type Args, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

export const diffCommand = defineCommand({
  ...usage('diff'),
  builder: (y) => y.positional('policy-file', { type: 'string', demandOption: true, describe: 'policy file (policy.ts)' }),
  handler: async (argv: Args<{ policyFile: string }>) => {
    const ir = await loadPolicyFile(argv.policyFile);
    const hashes = hashHandlers(argv.policyFile, ir);
    const manifest = loadedManifest(ir.name);
    // Manifests written before code hashes were recorded have none: their functions' code is unknown.
    const liveHashes = manifest.codeHashes;
    const d = diffPolicies(viewOfIr(manifest.ir, liveHashes), viewOfIr(ir, hashes));
    if (argv.out.json) argv.out.printJson(d);
    else argv.out.line(renderDiff(d));
  },
});
