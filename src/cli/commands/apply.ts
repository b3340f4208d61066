/**
 * `bpfctl apply POLICY_FILE`: converge what runs to the file (the kubectl model; `bpfctl diff`
 * shows the same changes without making them).
 * - running under `bpfctl run`: the supervisor makes every change live (routes as one
 *   generation, scaling, rolling replacement of changed code, added and removed functions, XDP);
 *   a change that cannot be live (pool geometry, gateway count) is refused with the reason, or
 *   with `--restart` the chain is stopped and started again from the file on the same port.
 * - loaded, not running: route, XDP and tc changes are written live (programs swapped through
 *   their links); anything else is refused unless `--restart`, which loads the policy again
 *   (nothing runs that could lose a request).
 * - not loaded: the same as `bpfctl load`.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { applyClassifiersToLoaded, isClassifierChange } from '../../deploy/classifiers.ts';
import { manifestHashes } from '../../deploy/code-hash.ts';
import { diffPolicies, type PolicyDiff, viewOfIr } from '../../deploy/diff.ts';
import { renderDiff } from '../../deploy/diff-render.ts';
import { listPolicies, loadedManifest, loadPolicy } from '../../deploy/policy.ts';
import { applyRouteChanges, type RouteChange } from '../../deploy/routes.ts';
import { BpfctlError } from '../../errors.ts';
import { loadPolicyFile } from '../../load/index.ts';
import { askSupervisor, controlPath } from '../../runtime/supervisor/index.ts';
import { requirePrivileges } from '../privileges.ts';
import { type Args, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

interface ApplyArgs {
  policyFile: string;
  restart: boolean;
}

/** Waits until the restarted chain runs the policy whose IR hash is `hash`, every instance ready. */
async function restarted(policy: string, hash: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    try {
      if (loadedManifest(policy).schemaHash !== hash) continue;
      const slots = (await askSupervisor(policy, { op: 'instances' }, undefined, 2000)) as { state: string }[];
      if (slots.length && slots.every((s) => s.state === 'ready')) return;
    } catch {
      // between the old chain and the new one
    }
  }
  throw new BpfctlError('E_APPLY', `the chain of ${policy} did not come back within 120 s after the restart (see the bpfctl run output)`);
}

async function running(policy: string): Promise<boolean> {
  if (!existsSync(controlPath(policy))) return false;
  try {
    await askSupervisor(policy, { op: 'instances' }, undefined, 5000);
    return true;
  } catch {
    return false;
  }
}

export const applyCommand = defineCommand<ApplyArgs>({
  ...usage('apply'),
  builder: (y) =>
    y
      .positional('policy-file', { type: 'string', demandOption: true, describe: 'policy file (policy.ts)' })
      .option('restart', { type: 'boolean', default: false, describe: 'allow changes that cannot be live: a running chain restarts in place (same URL), a loaded one is reloaded' }),
  handler: async (argv: Args<ApplyArgs>) => {
    const { out } = argv;
    requirePrivileges(`apply ${argv.policyFile}`, 'it changes loaded eBPF maps and programs, or asks the supervisor');
    const file = resolve(argv.policyFile);
    const ir = await loadPolicyFile(file);
    let diff: PolicyDiff | null = null;
    let how: string;
    if (!listPolicies().includes(ir.name)) {
      loadPolicy(ir, { policyFile: file, progress: (s) => out.progress(s) });
      how = 'loaded';
    } else if (await running(ir.name)) {
      out.progress(`asking the supervisor of ${ir.name} to apply ${file}`);
      const res = (await askSupervisor(ir.name, { op: 'apply', file, restart: argv.restart })) as { diff?: PolicyDiff; restarting?: boolean; reason?: string };
      if (res.restarting) {
        out.progress(`${res.reason ?? 'the change cannot be live'}: the chain restarts with the new policy`);
        await restarted(ir.name, ir.hash);
        how = 'restarted with the new policy (--restart)';
      } else {
        diff = res.diff ?? null;
        how = 'applied to the running chain';
      }
    } else {
      const m = loadedManifest(ir.name);
      diff = diffPolicies(viewOfIr(m.ir, m.codeHashes ?? {}), viewOfIr(ir, manifestHashes(file, ir)));
      const live = diff.changes.every((c) => c.kind.startsWith('route-') || isClassifierChange(c.kind));
      if (live) {
        const changes: RouteChange[] = diff.changes.flatMap((c): RouteChange[] => {
          if (c.kind === 'route-removed') return [{ op: 'del', route: c.name }];
          if (!c.kind.startsWith('route-')) return [];
          const r = ir.routes.find((x) => x.name === c.name)!;
          return [{ op: 'set', route: r.name, functions: r.functions, methods: r.methods }];
        });
        if (changes.length) applyRouteChanges(ir.name, changes);
        const sections = diff.changes.some((c) => isClassifierChange(c.kind));
        if (sections) applyClassifiersToLoaded(ir.name, diff, ir, { progress: (s) => out.progress(s) });
        const done = [...(changes.length ? ['routes changed live'] : []), ...(sections ? ['XDP/tc programs swapped through their links'] : [])];
        how = `applied (${done.join('; ') || 'routes changed live'})`;
      } else if (argv.restart) {
        loadPolicy(ir, { policyFile: file, progress: (s) => out.progress(s) });
        how = 'reloaded (--restart)';
      } else {
        throw new BpfctlError(
          'E_APPLY_RESTART',
          `policy ${ir.name} is loaded but not running: changes other than routes need a reload (bpfctl apply --restart ${argv.policyFile}), or run it with bpfctl run`,
        );
      }
    }
    if (out.json) return void out.printJson({ policy: ir.name, result: how, diff });
    if (diff) out.line(renderDiff(diff));
    out.line(`${ir.name}: ${how}`);
  },
});
