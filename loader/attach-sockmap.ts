/**
 * sk_msg / sk_skb programs on a sockmap or sockhash. These attach with bpf_prog_attach (no link
 * on libbpf 1.1), so the attachment lives as long as the map: close() detaches explicitly.
 * Attach before inserting sockets: a socket inserted earlier never runs the program.
 */
import { check, EINVAL, LoaderError } from './errors.ts';
import { type Attachment, BpfLink } from './link.ts';
import { lib } from './libbpf.ts';
import { typeValue } from './types.ts';

export type SockMapAttachKind = 'msg_verdict' | 'skb_verdict' | 'skb_parser';

const ATTACH_TYPE: Record<SockMapAttachKind, string> = {
  msg_verdict: 'sk_msg_verdict',
  skb_verdict: 'sk_skb_verdict',
  skb_parser: 'sk_skb_stream_parser',
};

export class SockMapAttachment implements Attachment {
  private attached = true;
  constructor(
    readonly progFd: number,
    readonly mapFd: number,
    readonly kind: SockMapAttachKind,
    private readonly attachType: number,
  ) {}

  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    check(lib().bpf_prog_detach2(this.progFd, this.mapFd, this.attachType), `detach ${this.kind} from map fd ${this.mapFd}`);
  }

  close(): void {
    this.detach();
  }
}

function checkFit(prog: { name: string; type: string }, map: { name: string; type: string }, kind: SockMapAttachKind): void {
  if (map.type !== 'sockmap' && map.type !== 'sockhash') {
    throw new LoaderError('E_INVAL', EINVAL, `cannot attach '${prog.name}' to map '${map.name}': it is a ${map.type}, not a sockmap or sockhash`);
  }
  const want = kind === 'msg_verdict' ? 'sk_msg' : 'sk_skb';
  if (prog.type !== want) {
    throw new LoaderError('E_INVAL', EINVAL, `cannot attach '${prog.name}' as ${kind}: it is a ${prog.type} program, ${kind} needs ${want}`);
  }
}

/**
 * The same attachment as a bpf_link (BPF_LINK_TYPE_SOCKMAP, kernel 6.10+), which can be pinned
 * and listed like any other link. LoaderError E_INVAL as attachSockMap.
 */
export function attachSockMapLink(prog: { fd: number; name: string; type: string }, map: { fd: number; name: string; type: string }, kind: SockMapAttachKind): BpfLink {
  checkFit(prog, map, kind);
  const attachType = typeValue('attach', ATTACH_TYPE[kind])!;
  return new BpfLink(check(lib().bpf_link_create(prog.fd, map.fd, attachType, null), `attach '${prog.name}' as ${kind} to map '${map.name}'`));
}

/** Detach `prog` (attached with bpf_prog_attach) from a sockmap; LoaderError E_NOENT when it is not attached there. */
export function detachSockMap(prog: { fd: number; name: string }, map: { fd: number; name: string }, kind: SockMapAttachKind): void {
  check(lib().bpf_prog_detach2(prog.fd, map.fd, typeValue('attach', ATTACH_TYPE[kind])!), `detach '${prog.name}' (${kind}) from map '${map.name}'`);
}

/** LoaderError E_INVAL when the map is not a sockmap/sockhash or the program type does not fit. */
export function attachSockMap(prog: { fd: number; name: string; type: string }, map: { fd: number; name: string; type: string }, kind: SockMapAttachKind): SockMapAttachment {
  if (map.type !== 'sockmap' && map.type !== 'sockhash') {
    throw new LoaderError('E_INVAL', EINVAL, `cannot attach '${prog.name}' to map '${map.name}': it is a ${map.type}, not a sockmap or sockhash`);
  }
  const want = kind === 'msg_verdict' ? 'sk_msg' : 'sk_skb';
  if (prog.type !== want) {
    throw new LoaderError('E_INVAL', EINVAL, `cannot attach '${prog.name}' as ${kind}: it is a ${prog.type} program, ${kind} needs ${want}`);
  }
  const attachType = typeValue('attach', ATTACH_TYPE[kind])!;
  check(lib().bpf_prog_attach(prog.fd, map.fd, attachType, 0), `attach '${prog.name}' as ${kind} to map '${map.name}'`);
  return new SockMapAttachment(prog.fd, map.fd, kind, attachType);
}
