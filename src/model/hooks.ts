/**
 * What a section's decisions become at each hook: the verdict the program returns for each action
 * and for malformed frames. Typed by the codegen's hook table (HOOKS, src/codegen/xdp/rules.ts):
 * a hook it gains, or an action kind the IR gains, fails `tsc` here; an action a hook cannot carry
 * out is `null` on both sides (test/unit/xdp-model.test.ts checks they agree, and that the
 * verdict names are the ones the generated C returns).
 */
import { MAX_VLANS } from '../codegen/xdp/parser.ts';
import { HOOKS, type Hook } from '../codegen/xdp/rules.ts';
import { CHAIN_XSK_GROUP, type XdpActionIR } from '../ir/xdp.ts';
import type { Pkt } from './frame.ts';

export type { Hook };

/** What the model cannot know from the bytes and the sets: the state of the fd maps. */
export interface ModelEnv {
  /** Is redirect slot `slot` (tx_ports) filled? Deploy fills every slot, or fails. Default: yes. */
  readonly redirectReady?: (slot: number, ifname: string) => boolean;
  /** Is an AF_XDP socket bound in group `group` at the receive queue (packet chains: group `chains`, pktio's)? Default: no. */
  readonly xskBound?: (group: string, queue: number) => boolean;
  /** The receive queue of the frame (BPF_PROG_TEST_RUN: 0). */
  readonly rxQueue?: number;
  /**
   * tc only: the VLAN tag the skb holds beside its data (`vlan_tci` with `vlan_present`), as on
   * receive, where the stack untags before tc. BPF_PROG_TEST_RUN frames have none.
   */
  readonly vlanTci?: number;
}

export interface Decision {
  /** The verdict's name in the C headers, e.g. `XDP_PASS`, `TC_ACT_SHOT`. */
  readonly verdict: string;
  /** When the outcome depends on state the model assumed, what the other outcome is. */
  readonly note?: string;
}

type ActionModel<K extends XdpActionIR['kind']> = (a: Extract<XdpActionIR, { kind: K }>, env: ModelEnv) => Decision;

export interface HookModel {
  /** Every verdict the hook's program returns, by name, with its value (linux/bpf.h, pkt_cls.h). */
  readonly verdicts: Readonly<Record<string, number>>;
  /** What the program does to the parsed packet before the rules, beyond the parser (tc: the offloaded VLAN tag). */
  readonly afterParse?: (p: Pkt, env: ModelEnv) => void;
  readonly actions: { readonly [K in XdpActionIR['kind']]: ActionModel<K> | null };
}

const ready = (env: ModelEnv, slot: number, ifname: string) => env.redirectReady?.(slot, ifname) ?? true;

export const HOOK_MODELS: { readonly [H in Hook]: HookModel } = {
  xdp: {
    verdicts: { XDP_ABORTED: 0, XDP_DROP: 1, XDP_PASS: 2, XDP_TX: 3, XDP_REDIRECT: 4 },
    actions: {
      pass: () => ({ verdict: 'XDP_PASS' }),
      drop: () => ({ verdict: 'XDP_DROP' }),
      tx: () => ({ verdict: 'XDP_TX' }),
      // bpf_redirect_map(&tx_ports, slot, XDP_DROP): the flags' low bits are the verdict of an empty slot.
      redirect: (a, env) =>
        ready(env, a.slot, a.ifname)
          ? { verdict: 'XDP_REDIRECT', note: `to ${a.ifname} (tx_ports[${a.slot}]); XDP_DROP if that slot were empty` }
          : { verdict: 'XDP_DROP', note: `tx_ports[${a.slot}] (${a.ifname}) is empty` },
      xsk: (a, env) => {
        const q = env.rxQueue ?? 0;
        return env.xskBound?.(a.group, q)
          ? { verdict: 'XDP_REDIRECT', note: `to the AF_XDP socket of group ${a.group} on queue ${q}` }
          : { verdict: 'XDP_PASS', note: `no AF_XDP socket of group ${a.group} assumed on queue ${q}: to the stack (XDP_REDIRECT when one is bound)` };
      },
      // bpf_redirect_map(&xsk_chains, queue, XDP_DROP) after the chain id went into the metadata.
      chain: (a, env) => {
        const q = env.rxQueue ?? 0;
        return env.xskBound?.(CHAIN_XSK_GROUP, q)
          ? { verdict: 'XDP_REDIRECT', note: `to pktio's socket on queue ${q}, tagged with chain id ${a.chain}` }
          : { verdict: 'XDP_DROP', note: `no pktio socket in xsk_${CHAIN_XSK_GROUP} assumed on queue ${q}: dropped, not passed (XDP_REDIRECT when pktio is bound)` };
      },
    },
  },
  tc: {
    verdicts: { TC_ACT_OK: 0, TC_ACT_SHOT: 2, TC_ACT_REDIRECT: 7 },
    // The tag beside the data was the outermost: the ones the parser saw come after it.
    afterParse: (p, env) => {
      if (env.vlanTci === undefined) return;
      p.vlan_inner = p.vlans ? p.vlan_outer : 0;
      p.vlan_outer = env.vlanTci & 0x0fff;
      p.vlans = Math.min(p.vlans + 1, MAX_VLANS);
    },
    actions: {
      pass: () => ({ verdict: 'TC_ACT_OK' }),
      drop: () => ({ verdict: 'TC_ACT_SHOT' }),
      tx: () => ({ verdict: 'TC_ACT_REDIRECT', note: 'back out of the device it arrived on' }),
      redirect: (a, env) =>
        ready(env, a.slot, a.ifname)
          ? { verdict: 'TC_ACT_REDIRECT', note: `to ${a.ifname} (tx_ports[${a.slot}]); TC_ACT_SHOT if that slot were empty` }
          : { verdict: 'TC_ACT_SHOT', note: `tx_ports[${a.slot}] (${a.ifname}) is empty` },
      xsk: null,
      chain: null,
    },
  },
};

/** The hooks the codegen compiles for, in its order. */
export const MODEL_HOOKS = Object.keys(HOOKS) as Hook[];

/** The verdict of a malformed frame: the codegen's own choice per hook. */
export function malformedVerdict(hook: Hook, malformed: 'drop' | 'pass'): string {
  return HOOKS[hook].malformed[malformed];
}
