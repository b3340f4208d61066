/**
 * `bpfctl prog ls|attach|detach`: every BPF program on the machine (like `bpftool prog show`),
 * and attaching a loaded program where its type belongs, each attachment a bpf_link pinned on
 * bpffs so it outlives the command (XDP, tc/tcx, cgroup hooks, sockops, sk_msg/sk_skb on a
 * sockmap, tracepoints, raw tracepoints, kprobes, fentry & co.).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Argv } from 'yargs';
import {
  BpfLink,
  type BpfProgram,
  DEFAULT_BPFFS,
  detachSockMap,
  LoaderError,
  type LinkInfo,
  listLinks,
  listProgramsDetailed,
  pinName,
  pinsByKind,
  type SockMapAttachKind,
  unpin,
} from '../../../loader/index.ts';
import { pinRoot } from '../../deploy/paths.ts';
import { BpfctlError } from '../../errors.ts';
import { UsageError } from '../errors.ts';
import { requirePrivileges } from '../privileges.ts';
import { findLoadOf, type PinnedEntry, writeManifest } from './object.ts';
import { openMapRef, openProgRef, positionalWords, resolveRef, splitRef } from './object-ref.ts';
import { type Command, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

/** An attach request that cannot be served as asked. */
export class AttachError extends BpfctlError {}

/** Wall-clock time of a kernel timestamp in ns since boot (the kernel reports load time so). */
function bootTimeToDate(ns: bigint): Date {
  const uptime = Number.parseFloat(readFileSync('/proc/uptime', 'utf8').split(' ')[0] ?? '0');
  const bootMs = Date.now() - uptime * 1000;
  return new Date(bootMs + Number(ns / 1_000_000n));
}

export { openProgRef } from './object-ref.ts';

/** Who owns a pinned program: a policy (pinned under the bpfctl root) or a `bpfctl load`. */
function ownerOf(pins: readonly string[]): string | null {
  const root = pinRoot();
  for (const p of pins) {
    const load = findLoadOf(p);
    if (load) return `load ${load.manifest.name}`;
    if (p.startsWith(`${root}/`)) {
      const policy = p.slice(root.length + 1).split('/')[0]!;
      if (policy !== 'obj' && policy !== 'links') return `policy ${policy}`;
    }
  }
  return null;
}

/** A load time for people: the time of day when it was today, else the date. */
function shortTime(d: Date): string {
  const iso = new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString();
  return Date.now() - d.getTime() < 86_400_000 ? iso.slice(11, 19) : iso.slice(0, 10);
}

/** The ids of the programs named by `words` (each a reference object-ref.ts takes). */
function progIds(words: string[]): Set<number> {
  const ids = new Set<number>();
  while (words.length) {
    const { ref, rest } = splitRef(words, 'prog');
    const r = resolveRef('prog', ref);
    if (r.id !== undefined) ids.add(r.id);
    else {
      const p = openProgRef(ref);
      ids.add(p.id);
      p.close();
    }
    words = rest;
  }
  return ids;
}

const ls: Command = {
  aliases: ['show'],
  ...defineCommand<{ prog?: string[] }>({
    command: 'ls [prog..]',
    describe: 'List every BPF program (full name, type, where it is attached, pins, owner, sizes), or the ones named',
    builder: (y: Argv) =>
      y
        .strict(false)
        .strictOptions()
        .parserConfiguration({ 'parse-positional-numbers': false })
        .positional('prog', { type: 'string', array: true, describe: 'id N, pinned PATH, name NAME, POLICY/PROG... (default: all)' }),
    handler: (argv) => {
      const only = progIds(positionalWords(argv, ['prog'], 2));
      // Programs first: refused, the error then names what was asked for ("list programs").
      const progs = listProgramsDetailed();
      const links = listLinks();
      const pins = pinsByKind('prog', DEFAULT_BPFFS);
      const names = ifNames();
      const rows = progs
        .filter((p) => !only.size || only.has(p.id))
        .map((p) => {
          const pinned = pins.get(p.id) ?? [];
          const loaded = bootTimeToDate(p.loadTime);
          return {
            id: p.id,
            name: p.fullName ?? p.name,
            type: p.type,
            tag: p.tag,
            attached: links
              .filter((l) => l.progId === p.id)
              .map((l) => `${l.type} ${l.target.replace(/^ifindex:(\d+)$/, (_m, i: string) => names.get(Number(i)) ?? `ifindex ${i}`)} (link ${l.id})`),
            pins: pinned,
            owner: ownerOf(pinned),
            xlated: p.xlatedLen ?? null,
            jited: p.jitedLen ?? null,
            mapIds: p.mapIds,
            btf: p.btfId || null,
            loadedAt: loaded.toISOString(),
            loaded: shortTime(loaded),
          };
        });
      if (argv.out.json) return argv.out.printJson(rows.map(({ loaded: _, ...r }) => r));
      // Named programs one by one with everything; the listing keeps to what fits a line.
      if (only.size) for (const { loaded: _, ...r } of rows) argv.out.record(r, `${r.name} (id ${r.id})`);
      else argv.out.table(rows, ['id', 'name', 'type', 'attached', 'owner', 'xlated', 'jited', 'loaded']);
    },
  }),
};

/** Hooks `prog attach` knows, with the target each takes. */
const HOOKS: Record<string, string> = {
  xdp: 'IFACE',
  tc: 'IFACE (--direction ingress|egress)',
  tc_ingress: 'IFACE',
  tc_egress: 'IFACE',
  cgroup: 'CGROUP_DIR (--attach-type, default from the program)',
  sockops: 'CGROUP_DIR',
  sk_msg: 'SOCKMAP (pin, id or name)',
  stream_verdict: 'SOCKMAP',
  stream_parser: 'SOCKMAP',
  sk_skb: 'SOCKMAP (parser or verdict from the section)',
  tracepoint: 'CATEGORY/NAME',
  raw_tp: 'NAME',
  kprobe: 'FUNCTION',
  kretprobe: 'FUNCTION',
  tracing: '(none: fentry/fexit/fmod_ret/tp_btf/lsm targets are fixed at load)',
};

/** The hook and target a tracing program's ELF section names (`tp/syscalls/sys_enter_x`, `kprobe/f`...). */
function fromSection(section: string): { hook: string; target?: string } | undefined {
  const m = /^([a-z_.]+)(?:\/(.*))?$/.exec(section);
  if (!m) return undefined;
  const [, kind, rest] = m;
  switch (kind) {
    case 'tp':
    case 'tracepoint':
      return rest ? { hook: 'tracepoint', target: rest } : undefined;
    case 'raw_tp':
    case 'raw_tracepoint':
    case 'raw_tp.w':
    case 'raw_tracepoint.w':
      return rest ? { hook: 'raw_tp', target: rest } : undefined;
    case 'kprobe':
    case 'kretprobe':
      return rest ? { hook: kind, target: rest } : undefined;
    case 'fentry':
    case 'fexit':
    case 'fmod_ret':
    case 'tp_btf':
    case 'lsm':
    case 'fentry.s':
    case 'fexit.s':
    case 'lsm.s':
      return { hook: 'tracing' };
    case 'xdp':
      return { hook: 'xdp' };
    case 'tc':
    case 'classifier':
      return { hook: 'tc' };
    case 'sockops':
      return { hook: 'sockops' };
    case 'sk_msg':
      return { hook: 'sk_msg' };
    case 'sk_skb':
      return rest === 'stream_parser' ? { hook: 'stream_parser' } : { hook: 'stream_verdict' };
    default:
      return kind?.startsWith('cgroup') ? { hook: 'cgroup' } : undefined;
  }
}

const SOCK_KIND: Record<string, SockMapAttachKind> = { sk_msg: 'msg_verdict', stream_verdict: 'skb_verdict', stream_parser: 'skb_parser' };

interface AttachArgs {
  prog: string;
  hook?: string;
  target?: string;
  pin?: string;
  mode?: 'native' | 'generic' | 'auto';
  netns?: string;
  direction?: 'ingress' | 'egress';
  attachType?: string;
  /** The attach type libbpf derived from the ELF section at load (from the load's manifest). */
  sectionAttachType?: string;
}

export interface AttachResult {
  program: string;
  progId: number;
  hook: string;
  target: string | null;
  linkId: number | null;
  pin: string | null;
  mode?: string;
}

function targetName(hook: string, target: string | undefined): string {
  return target ? `${hook}_${pinName(basename(target))}` : hook;
}

/** Attach; returns the link (or null for a legacy sockmap attachment) and a description of the target. */
function attachTo(prog: BpfProgram, hook: string, target: string | undefined, a: AttachArgs): { link: BpfLink | null; mode?: string } {
  const needTarget = () => {
    if (!target) throw new AttachError('E_USAGE', `prog attach ${hook} needs a target: ${HOOKS[hook]}`);
    return target;
  };
  switch (hook) {
    case 'xdp': {
      const l = prog.attachXdp(needTarget(), { mode: a.mode, netns: a.netns });
      return { link: l, mode: l.mode };
    }
    case 'tc':
    case 'tc_ingress':
    case 'tc_egress':
      return { link: prog.attachTc(needTarget(), hook === 'tc' ? (a.direction ?? 'ingress') : hook === 'tc_ingress' ? 'ingress' : 'egress', { netns: a.netns }) };
    case 'cgroup':
    case 'sockops':
      return { link: prog.attachCgroup(needTarget(), a.attachType ?? a.sectionAttachType) };
    case 'sk_msg':
    case 'stream_verdict':
    case 'stream_parser':
    case 'sk_skb': {
      const kind = hook === 'sk_skb' ? (prog.expectedAttachType === 'sk_skb_stream_parser' ? 'skb_parser' : 'skb_verdict') : SOCK_KIND[hook]!;
      const map = openMapRef(needTarget());
      try {
        return { link: prog.attachSockMapLink(map, kind) };
      } catch (err) {
        // Kernels before 6.10 have no sockmap links: attach to the map itself (no pin needed, the map holds it).
        if (!(err instanceof LoaderError) || err.code !== 'E_INVAL' || !/attach '/.test(err.message)) throw err;
        prog.attachSockMap(map, kind);
        return { link: null };
      } finally {
        map.close();
      }
    }
    case 'tracepoint': {
      const t = needTarget();
      const [cat, name] = t.split('/');
      if (!cat || !name) throw new AttachError('E_USAGE', `prog attach tracepoint: expected CATEGORY/NAME (e.g. syscalls/sys_enter_getpid), got '${t}'`);
      return { link: prog.attachTracepoint(cat, name) };
    }
    case 'raw_tp':
      return { link: prog.attachRawTracepoint(needTarget()) };
    case 'kprobe':
    case 'kretprobe':
      return { link: prog.attachKprobe(needTarget(), { retprobe: hook === 'kretprobe' }) };
    case 'tracing':
      return { link: prog.attachTracing() };
    default:
      throw new AttachError('E_USAGE', `unknown hook '${hook}' (hooks: ${Object.keys(HOOKS).join(', ')})`);
  }
}

/**
 * Attaches the program `a.prog` at `a.hook` (derived from its ELF section when it was loaded by
 * `bpfctl load` and no hook is given) and pins the link: at `--pin`, else in the load's
 * `links/` directory, else under the bpfctl pin root. The link is recorded in the load's
 * manifest, so `unload` detaches it.
 */
export function attachCommand(a: AttachArgs): AttachResult {
  // A program named by its pin path says its hook and its load (a POLICY/NAME reference is
  // pinned under the pin root, as objects-maps.test.ts expects).
  const owner = a.prog.startsWith('/') ? findLoadOf(a.prog) : undefined;
  let hook = a.hook;
  let target = a.target;
  if (!hook || hook === 'auto') {
    const derived = owner?.entry.section ? fromSection(owner.entry.section) : undefined;
    if (!derived) throw new AttachError('E_USAGE', `prog attach ${a.prog}: name the hook (${Object.keys(HOOKS).join(', ')})${owner ? `; section '${owner.entry.section}' does not say` : ''}`);
    hook = derived.hook;
    target ??= derived.target;
  }
  const prog = openProgRef(a.prog);
  try {
    // A pinned program no longer says which cgroup hook its section named (connect4, sendmsg6,
    // sock_create...): the load's manifest does.
    const sectionAttachType = owner?.entry.attachType?.startsWith('cgroup_') ? owner.entry.attachType : undefined;
    const { link, mode } = attachTo(prog, hook, target, { ...a, sectionAttachType });
    if (!link) return { program: prog.name, progId: prog.id, hook, target: target ?? null, linkId: null, pin: null };
    try {
      const pin =
        a.pin ?? (owner ? join(owner.manifest.dir, 'links', `${pinName(owner.entry.name)}_${targetName(hook, target)}`) : join(pinRoot(), 'links', `${pinName(prog.name)}_${targetName(hook, target)}`));
      if (existsSync(pin)) throw new AttachError('E_EXISTS', `${pin} is already pinned: detach that link first (bpfctl link detach ${pin}), or give --pin`);
      link.pin(pin);
      // A link pinned in the load's directory belongs to the load (unload detaches it); one pinned
      // elsewhere is the caller's, and unload warns about it instead.
      if (owner && pin.startsWith(`${owner.manifest.dir}/`)) {
        const entry: PinnedEntry = { kind: 'link', name: basename(pin), type: link.type, id: link.id, pin, program: owner.entry.name, target: `${hook}${target ? ` ${target}` : ''}` };
        owner.manifest.pins.push(entry);
        writeManifest(owner.path, owner.manifest);
      }
      return { program: prog.name, progId: prog.id, hook, target: target ?? null, linkId: link.id, pin, ...(mode ? { mode } : {}) };
    } catch (err) {
      link.detach();
      throw err;
    } finally {
      link.close();
    }
  } finally {
    prog.close();
  }
}

/** Forget `pins` in the manifests of the loads that recorded them. */
export function forgetLinkPins(pins: readonly string[]): void {
  const byDir = new Map<string, string[]>();
  for (const p of pins) {
    const dir = dirname(dirname(p));
    byDir.set(dir, [...(byDir.get(dir) ?? []), p]);
  }
  for (const [, list] of byDir) {
    const owner = findLoadOf(list[0]!);
    if (!owner) continue;
    owner.manifest.pins = owner.manifest.pins.filter((e) => !list.includes(e.pin));
    writeManifest(owner.path, owner.manifest);
  }
}

const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Detach link `info` and remove every pin that holds it (`pins`); the manifests forget them.
 * Link types without BPF_LINK_DETACH (perf_event, raw_tracepoint, ...) go when their last
 * reference does: the pins are removed and AttachError E_BUSY names a process still holding one.
 */
export function detachLink(info: LinkInfo, pins: readonly string[]): void {
  const l = BpfLink.fromId(info.id);
  let detached = true;
  try {
    l.detach();
  } catch (err) {
    if (!(err instanceof LoaderError) || err.code !== 'E_NOTSUPP') throw err;
    detached = false;
  } finally {
    l.close();
  }
  for (const p of pins) unpin(p);
  forgetLinkPins(pins);
  if (detached) return;
  for (let i = 0; i < 20; i++) {
    if (!listLinks().some((x) => x.id === info.id)) return;
    pause(50);
  }
  throw new AttachError('E_BUSY', `link ${info.id} (${info.type}) cannot be detached while a process holds it, and one still does (its pins are gone): bpftool link show id ${info.id}`);
}

/** bpftool's two-word references (`id 5`, `pinned PATH`) arrive as several positionals. */
const refWordsOf = (y: Argv) => y.strict(false).strictOptions().parserConfiguration({ 'parse-positional-numbers': false });

/** PROG [HOOK] [TARGET] as typed: `attach id 5 sk_msg id 12` is PROG `id 5`, HOOK sk_msg, TARGET `id 12`. */
function progWords(argv: { _: readonly (string | number)[] } & Record<string, unknown>, cmd: string): { prog: string; hook?: string; target?: string } {
  const { ref, rest } = splitRef(positionalWords(argv, ['prog', 'hook', 'target'], 2), 'prog');
  const [hook, ...target] = rest;
  // A target may itself be a two-word reference (a sockmap as `id 12`); nothing else has spaces.
  if (target.length > 1 && !['id', 'pinned', 'name'].includes(target[0]!)) throw new UsageError(`prog ${cmd} ${ref}: unexpected '${target.slice(1).join(' ')}'`);
  return { prog: ref, hook, target: target.length ? target.join(' ') : undefined };
}

/** Where each link is pinned, from a walk of bpffs. */
export function linkPins(): Map<number, string[]> {
  return pinsByKind('link', DEFAULT_BPFFS);
}

const attach = defineCommand<AttachArgs>({
  command: 'attach <prog> [hook] [target]',
  describe: 'Attach a program (pin, id or name:X) and pin the link: xdp IFACE, tc IFACE, cgroup DIR, sockops DIR, sk_msg|stream_verdict|stream_parser MAP, tracepoint CAT/NAME, raw_tp NAME, kprobe FN, tracing',
  builder: (y: Argv) =>
    refWordsOf(y)
      .positional('prog', { type: 'string', demandOption: true, describe: 'id N, pinned PATH, name NAME, POLICY/PROG or a pin path' })
      .positional('hook', { type: 'string', describe: `where: ${Object.keys(HOOKS).join(', ')} (default: from the ELF section of a bpfctl-loaded program)` })
      .positional('target', { type: 'string', describe: 'interface, cgroup directory, sockmap, tracepoint, function' })
      .option('pin', { type: 'string', describe: 'pin the link here (default: the load directory links/, or <pin root>/links/)' })
      .option('mode', { choices: ['native', 'generic', 'auto'] as const, describe: 'XDP mode' })
      .option('netns', { type: 'string', describe: 'network namespace of the interface (name under /run/netns, or a path)' })
      .option('direction', { choices: ['ingress', 'egress'] as const, describe: 'tc direction (default ingress)' })
      .option('attach-type', { type: 'string', describe: 'cgroup attach type, e.g. cgroup_inet_egress (default from the program)' }),
  handler: (argv) => {
    requirePrivileges('prog attach', 'it attaches a program to a kernel hook');
    const res = attachCommand({ ...argv, ...progWords(argv, 'attach') });
    if (argv.out.json) return argv.out.printJson(res);
    argv.out.record(
      { program: `${res.program} (id ${res.progId})`, hook: res.hook, target: res.target ?? '-', link: res.linkId ?? '- (attached to the map)', pin: res.pin ?? '-', ...(res.mode ? { mode: res.mode } : {}) },
      `Attached ${res.program}`,
    );
  },
});

interface DetachArgs {
  prog: string;
  hook?: string;
  target?: string;
}

const detach = defineCommand<DetachArgs>({
  command: 'detach <prog> [hook] [target]',
  describe: 'Detach a program: every link of it (or only those at HOOK), removing their pins; sk_msg/sk_skb attached to a map without a link: name the hook and map',
  builder: (y: Argv) =>
    refWordsOf(y)
      .positional('prog', { type: 'string', demandOption: true, describe: 'id N, pinned PATH, name NAME, POLICY/PROG or a pin path' })
      .positional('hook', { type: 'string' })
      .positional('target', { type: 'string' }),
  handler: (raw) => {
    requirePrivileges('prog detach', 'it detaches links and removes their pins');
    const argv = { ...raw, ...progWords(raw, 'detach') };
    const prog = openProgRef(argv.prog);
    try {
      const hookType: Record<string, string[]> = {
        xdp: ['xdp'],
        tc: ['tcx'],
        tc_ingress: ['tcx'],
        tc_egress: ['tcx'],
        cgroup: ['cgroup'],
        sockops: ['cgroup'],
        sk_msg: ['sockmap'],
        stream_verdict: ['sockmap'],
        stream_parser: ['sockmap'],
        sk_skb: ['sockmap'],
        tracepoint: ['perf_event'],
        kprobe: ['perf_event'],
        kretprobe: ['perf_event'],
        raw_tp: ['raw_tracepoint'],
        tracing: ['tracing'],
      };
      const links = listLinks().filter((l) => l.progId === prog.id && (!argv.hook || (hookType[argv.hook] ?? [argv.hook]).includes(l.type)));
      const pins = links.length ? linkPins() : new Map<number, string[]>();
      const detached: { linkId: number; type: string; pins: string[] }[] = [];
      for (const l of links) {
        const p = pins.get(l.id) ?? [];
        detachLink(l, p);
        detached.push({ linkId: l.id, type: l.type, pins: p });
      }
      if (!links.length && argv.hook && SOCK_KIND[argv.hook] && argv.target) {
        const map = openMapRef(argv.target);
        try {
          detachSockMap(prog, map, SOCK_KIND[argv.hook]!);
        } finally {
          map.close();
        }
        detached.push({ linkId: 0, type: `${argv.hook} (no link)`, pins: [] });
      }
      if (!detached.length)
        throw new AttachError('E_NOENT', `program '${prog.name}' (id ${prog.id}) is not attached through a link${argv.hook ? ` at ${argv.hook}` : ''} (bpfctl link ls)`);
      if (argv.out.json) argv.out.printJson({ program: prog.name, progId: prog.id, detached });
      else for (const d of detached) argv.out.line(`detached ${prog.name} (${d.type}${d.linkId ? `, link ${d.linkId}` : ''})${d.pins.length ? `, removed ${d.pins.join(', ')}` : ''}`);
    } finally {
      prog.close();
    }
  },
});

export const progCommand: Command = {
  ...usage('prog'),
  builder: (y: Argv) => y.command(ls).command(attach).command(detach).demandCommand(1),
  handler: () => {},
};

/** Interface names by ifindex (this namespace), for link listings. */
export function ifNames(): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const n of readdirSync('/sys/class/net')) {
      try {
        out.set(Number(readFileSync(`/sys/class/net/${n}/ifindex`, 'utf8').trim()), n);
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no sysfs
  }
  return out;
}
