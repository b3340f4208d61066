/**
 * XDP through a bpf_link (kernel 5.9+): replacing the program is one atomic link update, the
 * attachment dies with the last fd (or lives on when pinned), and another process's XDP program
 * on the same device is never clobbered by accident.
 */
import { check, EBUSY, EEXIST, EINVAL, ENOENT, EOPNOTSUPP, LoaderError, loaderError } from './errors.ts';
import { BpfLink } from './link.ts';
import { lib } from './libbpf.ts';
import { ifIndex, withNetns } from './netns.ts';
import { typeValue } from './types.ts';

export type XdpMode = 'native' | 'generic' | 'auto';

const XDP_FLAGS_SKB_MODE = 1 << 1;
const XDP_FLAGS_DRV_MODE = 1 << 2;
const MODE_FLAGS: Record<XdpMode, number> = { native: XDP_FLAGS_DRV_MODE, generic: XDP_FLAGS_SKB_MODE, auto: 0 };
// bpf_xdp_query_opts.attach_mode values (XDP_ATTACHED_*).
const ATTACHED: Record<number, 'native' | 'generic' | 'offload' | 'multi'> = { 1: 'native', 2: 'generic', 3: 'offload', 4: 'multi' };

export interface XdpAttachOptions {
  /** 'auto' (default) lets the kernel use the driver when it can and fall back to generic. */
  mode?: XdpMode;
  /** Detach a legacy (netlink, non-link) XDP program already on the device first. */
  replace?: boolean;
  /** Network namespace the interface lives in (a name under /run/netns, or a path). */
  netns?: string;
}

interface XdpState {
  progId: number;
  mode?: 'native' | 'generic' | 'offload' | 'multi';
}

function query(ifindex: number): XdpState {
  // struct bpf_xdp_query_opts: sz@0, prog_id@8, drv@12, hw@16, skb@20, attach_mode@24 (u8); 32 bytes
  const o = Buffer.alloc(32);
  o.writeBigUInt64LE(32n, 0);
  check(lib().bpf_xdp_query(ifindex, 0, o), `query XDP on ifindex ${ifindex}`);
  const progId = o.readUInt32LE(8) || o.readUInt32LE(12) || o.readUInt32LE(20);
  return { progId, mode: ATTACHED[o.readUInt8(24)] };
}

export class XdpAttachment extends BpfLink {
  /** The mode the kernel actually used (with 'auto': 'native' on drivers with XDP support). */
  readonly mode: 'native' | 'generic' | 'offload' | 'multi';
  readonly ifindex: number;
  readonly ifname: string;
  readonly netns: string | undefined;

  constructor(fd: number, mode: XdpAttachment['mode'], ifindex: number, ifname: string, netns: string | undefined) {
    super(fd);
    this.mode = mode;
    this.ifindex = ifindex;
    this.ifname = ifname;
    this.netns = netns;
  }
}

function inNs<T>(netns: string | undefined, fn: () => T): T {
  return netns ? withNetns(netns, fn) : fn();
}

/**
 * Attach an XDP program. LoaderError E_NOENT for an unknown interface, E_BUSY when a program is
 * already attached (without `replace`, or attached by another link), E_NOTSUPP when 'native' is
 * asked of a driver without XDP support.
 */
export function attachXdp(prog: { fd: number; name: string; type: string }, iface: string | number, opts: XdpAttachOptions = {}): XdpAttachment {
  if (prog.type !== 'xdp') throw new LoaderError('E_INVAL', EINVAL, `cannot attach '${prog.name}' to XDP: it is a ${prog.type} program`);
  const mode = opts.mode ?? 'auto';
  const flags = MODE_FLAGS[mode];
  const attachType = typeValue('attach', 'xdp')!;
  return inNs(opts.netns, () => {
    const ifindex = typeof iface === 'number' ? iface : ifIndex(iface);
    const where = `${iface}${opts.netns ? ` in netns ${opts.netns}` : ''}`;
    if (!ifindex) throw loaderError(`attach XDP '${prog.name}' to ${where}`, ENOENT, { hint: 'no such network interface' });
    const o = Buffer.alloc(32); // bpf_link_create_opts: sz@0, flags@8
    o.writeBigUInt64LE(32n, 0);
    o.writeUInt32LE(flags, 8);
    let fd = lib().bpf_link_create(prog.fd, ifindex, attachType, o) as number;
    if (mode === 'auto' && (fd === -EOPNOTSUPP || fd === -EINVAL)) {
      // The driver has XDP hooks but refused this program (e.g. MTU too large): use generic.
      o.writeUInt32LE(XDP_FLAGS_SKB_MODE, 8);
      fd = lib().bpf_link_create(prog.fd, ifindex, attachType, o) as number;
    }
    if ((fd === -EBUSY || fd === -EEXIST) && opts.replace) {
      // A legacy attachment can be removed; a link owned by someone else cannot (and must not).
      const before = query(ifindex);
      if (before.progId) {
        const legacyFlags = before.mode === 'generic' ? XDP_FLAGS_SKB_MODE : before.mode === 'native' ? XDP_FLAGS_DRV_MODE : flags;
        check(lib().bpf_xdp_detach(ifindex, legacyFlags, null), `detach legacy XDP from ${where}`);
      }
      fd = lib().bpf_link_create(prog.fd, ifindex, attachType, o) as number;
    }
    if (fd === -EBUSY || fd === -EEXIST) {
      throw loaderError(`attach XDP '${prog.name}' to ${where}`, -fd, {
        code: 'E_BUSY',
        hint: `an XDP program (id ${query(ifindex).progId}) is already attached; to swap programs atomically use update() on its link`,
      });
    }
    check(fd, `attach XDP '${prog.name}' to ${where} (${mode})`);
    const state = query(ifindex);
    return new XdpAttachment(fd, state.mode ?? (mode === 'generic' ? 'generic' : 'native'), ifindex, String(iface), opts.netns);
  });
}

