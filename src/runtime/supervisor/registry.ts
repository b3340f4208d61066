/**
 * The supervisor's side of registration: what the kernel may trust, kept equal to what is alive.
 * Only the supervisor writes `socks`, and only with a socket it got from the process it started
 * for that slot (over that process's own IPC channel, or connected by the supervisor and handed
 * down): a process it did not start, even one inside the policy cgroup, has no way to put a socket
 * there or to replace one. `instances` lists a function's instance only between its process
 * registering and dying, so the sk_msg program never picks a dead socket; a dead process's pool
 * buffers are reclaimed the moment it is gone.
 */
import type { ChainMaps } from '../../deploy/chain-maps.ts';
import { MAX_INSTANCES } from '../../ir/chain-limits.ts';
import { sockKeyBytes } from '../../ir/chain-maps.ts';
import type { Pool } from '../pool/index.ts';
import type { Slot, SlotHost } from './slot.ts';

export interface InstanceDown {
  fnId: number;
  inst: number;
  /** The function's live ids just before it left them (how the kernel picked among them). */
  before: number[];
}

export class Registry implements SlotHost {
  private readonly live = new Map<number, number[]>();
  /** Ids after the live ones in `instances`: other nodes' instances this node spills to (agent). */
  private readonly extra = new Map<number, number[]>();
  private closed = false;
  /** A process died (not a planned stop): requests it held are lost. */
  onDeath: (d: InstanceDown) => void = () => {};
  /** A socket connected from this local port was registered (the hub keeps its connection). */
  onRegistered: (localPort: number) => void = () => {};

  constructor(
    private readonly maps: ChainMaps,
    private readonly pool: Pool,
    readonly log: (line: string) => void,
  ) {}

  /** Maps are about to be closed: from here on only the bookkeeping in memory changes. */
  close(): void {
    this.closed = true;
  }

  liveIds(fnId: number): number[] {
    return [...(this.live.get(fnId) ?? [])];
  }

  register = (slot: Slot, fd: number, localPort?: number): void => {
    if (this.closed) throw new Error('the chain is stopping');
    this.maps.socks.updateFd(sockKeyBytes(slot.fnId, slot.instance), fd);
    if (localPort) this.onRegistered(localPort);
  };

  up = (slot: Slot): void => {
    const ids = this.live.get(slot.fnId) ?? [];
    this.live.set(slot.fnId, ids);
    // Appended, not sorted: the ids already live keep their positions, so most requests keep
    // mapping to the instance they mapped to (req_id % count changes only for the new count).
    if (!ids.includes(slot.instance)) ids.push(slot.instance);
    this.write(slot.fnId);
    if (slot.restarts) this.log(`[${slot.label}] restarted as pid ${slot.pid}`);
  };

  /** Also used to take an instance out of rotation before it is stopped (scaling down, replacing). */
  retire(slot: Slot): number[] {
    const ids = this.live.get(slot.fnId) ?? [];
    const before = [...ids];
    const at = ids.indexOf(slot.instance);
    if (at >= 0) {
      ids.splice(at, 1);
      this.write(slot.fnId);
    }
    return before;
  }

  down = (slot: Slot, pid: number, planned: boolean): void => {
    const before = this.retire(slot);
    if (!planned && before.includes(slot.instance)) this.onDeath({ fnId: slot.fnId, inst: slot.instance, before });
    // What the dead process held (buffers it allocated, or adopted mid-request) is free again.
    if (pid > 0 && !this.closed) {
      const n = this.pool.reclaim(pid);
      if (n) this.log(`[${slot.label}] reclaimed ${n} pool buffer${n > 1 ? 's' : ''} of pid ${pid}`);
    }
  };

  /**
   * Other nodes' instance ids the kernel may also pick for a function that has live ones here
   * (the node-link's sockets, while local instances are overloaded); [] to stop. A function with
   * no live instance here keeps none: the extras never stand in for a local instance.
   */
  setExtra(fnId: number, ids: number[]): void {
    const was = this.extra.get(fnId) ?? [];
    if (was.length === ids.length && was.every((x, i) => x === ids[i])) return;
    if (ids.length) this.extra.set(fnId, [...ids]);
    else this.extra.delete(fnId);
    if (this.live.get(fnId)?.length) this.write(fnId);
  }

  private write(fnId: number): void {
    if (this.closed) return;
    const live = this.liveIds(fnId);
    const ids = (live.length ? [...live, ...(this.extra.get(fnId) ?? [])] : live).slice(0, MAX_INSTANCES);
    this.maps.instances.set(fnId, { count: ids.length, inst: Array.from({ length: MAX_INSTANCES }, (_, i) => ids[i] ?? 0) });
  }
}
