/**
 * `bpfctl load` and `bpfctl unload`: one verb for both kinds of thing bpfctl loads. A policy
 * (policy.ts) is built, loaded, attached and pinned under /sys/fs/bpf/bpfctl/<policy>; a plain
 * object file (.bpf.o) is loaded and its programs and maps pinned under --pin DIR.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isDirectory, pathExists } from '../../deploy/access.ts';
import { loadPolicyFile } from '../../load/index.ts';
import { loadPolicy, unloadPolicy } from '../../deploy/policy.ts';
import { pinRoot } from '../../deploy/paths.ts';
import { UsageError } from '../errors.ts';
import { requirePrivileges, unprivilegedBpfAllowed } from '../privileges.ts';
import { loadObjectCommand, unloadDirCommand } from './object.ts';
import { askSupervisor, controlPath, runDir } from '../../runtime/supervisor/index.ts';
import { BpfctlError } from '../../errors.ts';
import type { Output } from '../output.ts';
import { type Args, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

const isObjectFile = (f: string) => /\.(bpf\.)?o$/.test(f);
const isPolicyFile = (f: string) => /\.(ts|mts|js|mjs)$/.test(f);

interface LoadArgs {
  target: string;
  pin?: string;
  xdpMode?: 'native' | 'generic' | 'auto';
  keepSets: boolean;
  set?: string[];
}

export const loadCommand = defineCommand({
  ...usage('load'),
  builder: (y) =>
    y
      .positional('target', { type: 'string', demandOption: true, describe: 'policy.ts or FILE.bpf.o' })
      .option('pin', { type: 'string', describe: 'pin directory for an object file (default /sys/fs/bpf/bpfctl/obj/<name>)' })
      .option('xdp-mode', { choices: ['native', 'generic', 'auto'] as const, describe: 'XDP attach mode for sections that do not set one' })
      .option('set', { type: 'string', array: true, describe: 'object file: set a global before load, NAME=VALUE (repeatable; parsed by its BTF type)' })
      .option('keep-sets', { type: 'boolean', default: false, describe: 'when replacing a loaded policy, keep the live contents of its XDP sets' }),
  handler: async (argv: Args<LoadArgs>) => {
    const { out, target } = argv;
    if (isObjectFile(target)) {
      // Unprivileged loads are possible only where the kernel allows them (socket filters...).
      if (!unprivilegedBpfAllowed()) requirePrivileges(`load ${target}`, 'this kernel lets only CAP_BPF load programs (kernel.unprivileged_bpf_disabled)');
      const dir = argv.pin ?? join(pinRoot(), 'obj', basename(target).replace(/\.(bpf\.)?o$/, ''));
      await loadObjectCommand(target, dir, out, { set: argv.set });
      return;
    }
    if (!isPolicyFile(target)) throw new UsageError(`cannot load ${target}: expected a policy (.ts) or an object file (.bpf.o)`);
    // Before the build: loading a policy always needs them, and a compile then a refusal is a
    // minute wasted.
    requirePrivileges(`load ${target}`, 'it loads, attaches and pins eBPF programs and makes a cgroup');
    out.progress(`validating ${target}`);
    const ir = await loadPolicyFile(target);
    // Replacing the pins of a running chain would leave its processes on the old maps: the split
    // between what runs and what the kernel has that live control exists to prevent.
    const pid = await runningSupervisor(ir.name);
    if (pid !== null) {
      throw new BpfctlError('E_RUNNING', `policy ${ir.name} is running under bpfctl run (supervisor pid ${pid}): change it live with bpfctl apply ${target}, or stop it first`);
    }
    const res = loadPolicy(ir, { policyFile: target, progress: (s) => out.progress(s), xdpMode: argv.xdpMode, keepSets: argv.keepSets });
    const m = res.manifest;
    if (out.json) {
      out.printJson({ policy: m.policy, dir: res.dir, replaced: res.replaced, schemaHash: m.schemaHash, cgroup: m.cgroup, pins: m.pins, xdp: m.xdp, tc: m.tc ?? [] });
      return;
    }
    out.record(
      {
        policy: m.policy,
        pinned: res.dir,
        cgroup: m.cgroup ?? '-',
        functions: ir.functions.map((f) => `${f.name}x${f.instances}`).join(' '),
        routes: ir.routes.map((r) => r.name).join(' '),
        xdp: m.xdp.map((x) => `${x.interface} (${x.mode})`).join(' ') || '-',
        ...(m.tc?.length ? { tc: m.tc.map((x) => `${x.interface} (${x.direction})`).join(' ') } : {}),
        replaced: res.replaced,
      },
      `${res.replaced ? 'Replaced' : 'Loaded'} ${m.policy}`,
    );
  },
});

interface UnloadArgs {
  target: string;
  object?: string;
}

export const unloadCommand = defineCommand({
  ...usage('unload'),
  builder: (y) =>
    y
      .positional('target', { type: 'string', demandOption: true, describe: 'policy name, policy.ts, or a pin directory' })
      .option('object', { type: 'string', describe: 'with a pin directory: remove only what the load of this object recorded (its name, e.g. xdp_stats)' }),
  handler: async (argv: Args<UnloadArgs>) => {
    const { out, target } = argv;
    requirePrivileges(`unload ${target}`, 'it detaches programs and removes their pins');
    if (target.includes('/') && isDirectory(target)) {
      await unloadDirCommand(target, out, { object: argv.object });
      return;
    }
    if (argv.object !== undefined) throw new UsageError('--object goes with a pin directory (bpfctl unload DIR --object NAME)');
    const name = isPolicyFile(target) ? (await loadPolicyFile(target)).name : target;
    // A chain that `bpfctl run` supervises is stopped through its supervisor, which removes its
    // processes, pool, pins and cgroup; pulling the pins from under it would leave it answering
    // with none of its state visible.
    const stopped = await stopRunningChain(name, out);
    if (stopped !== null) {
      if (out.json) out.printJson({ policy: name, stoppedSupervisor: stopped, removed: 'all' });
      else out.line(`stopped ${name} (supervisor pid ${stopped}) and unloaded it`);
      return;
    }
    const res = unloadPolicy(name);
    if (out.json) out.printJson({ policy: name, removed: res.removed });
    else out.line(`unloaded ${name} (${res.removed.length} pins removed)`);
  },
});

/** Stops the supervisor running `policy`, if one does; its pid, or null when none runs it. */
async function stopRunningChain(policy: string, out: Output): Promise<number | null> {
  if (!pathExists(controlPath(policy))) return null;
  let pid: number;
  try {
    pid = ((await askSupervisor(policy, { op: 'stop' }, undefined, 5000)) as { pid: number }).pid;
  } catch (err) {
    if ((err as { code?: string }).code === 'E_NOT_RUNNING') return null;
    throw err;
  }
  out.progress(`policy ${policy} runs under bpfctl run (pid ${pid}): stopping it`);
  const lock = join(runDir(), `${policy}.pid`);
  const deadline = Date.now() + 30_000;
  while (pathExists(lock) || pathExists(controlPath(policy))) {
    if (Date.now() > deadline) throw new BpfctlError('E_UNLOAD', `the supervisor of ${policy} (pid ${pid}) did not stop within 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return pid;
}

/** The pid of the supervisor running `policy`, or null when none does. */
async function runningSupervisor(policy: string): Promise<number | null> {
  if (!pathExists(controlPath(policy))) return null;
  try {
    // Answers only while a supervisor is alive (a killed one leaves its socket file behind).
    await askSupervisor(policy, { op: 'instances' }, undefined, 5000);
    const lock = join(runDir(), `${policy}.pid`);
    return pathExists(lock) ? Number(readFileSync(lock, 'utf8').trim()) || 0 : 0;
  } catch {
    return null;
  }
}
