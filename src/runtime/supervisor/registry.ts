/**
 * The supervisor's side of registration: what the kernel may trust, kept equal to what is alive.
 * `reg_ports` holds a port only while the process it was reserved for lives; `instances` lists a
 * function's instance only between its process registering and dying, so the sk_msg program never
 * picks a dead socket; and a dead process's pool buffers are reclaimed the moment it is gone.
 */
import type { ChainMaps } from '../../deploy/chain-maps.ts';
import { MAX_INSTANCES } from '../../ir/chain-limits.ts';
import { sockKey } from '../../schema/chain-maps.ts';
import type { Pool } from '../pool/index.ts';
import type { PortReserver } from './ports.ts';
import type { Slot, SlotHost } from './slot.ts';

export class Registry implements SlotHost {
  private readonly live = new Map<number, Set<number>>();
  private closed = false;

  constructor(
    private readonly maps: ChainMaps,
    private readonly pool: Pool,
    private readonly ports: PortReserver,
    readonly log: (line: string) => void,
  ) {}

  /** Maps are about to be closed: from here on only the bookkeeping in memory changes. */
  close(): void {
    this.closed = true;
  }

  liveIds(fnId: number): number[] {
    return [...(this.live.get(fnId) ?? [])].sort((a, b) => a - b);
  }

  reservePort = (): Promise<number> => this.ports.take();

  allowPort = (port: number, fnId: number, inst: number): void => {
    this.maps.regPorts.set(port, sockKey(fnId, inst));
  };

  revokePort = (port: number): void => {
    this.ports.release(port);
    if (!this.closed) this.maps.regPorts.delete(port);
  };

  up = (slot: Slot): void => {
    const set = this.live.get(slot.fnId) ?? new Set<number>();
    this.live.set(slot.fnId, set);
    set.add(slot.instance);
    this.write(slot.fnId);
    if (slot.restarts) this.log(`[${slot.label}] restarted as pid ${slot.pid}`);
  };

  /** Also used to take an instance out of rotation before it is stopped (scaling down). */
  retire(slot: Slot): void {
    if (this.live.get(slot.fnId)?.delete(slot.instance)) this.write(slot.fnId);
  }

  down = (slot: Slot, pid: number): void => {
    this.retire(slot);
    // What the dead process held (buffers it allocated, or adopted mid-request) is free again.
    if (pid > 0 && !this.closed) {
      const n = this.pool.reclaim(pid);
      if (n) this.log(`[${slot.label}] reclaimed ${n} pool buffer${n > 1 ? 's' : ''} of pid ${pid}`);
    }
  };

  private write(fnId: number): void {
    if (this.closed) return;
    const ids = this.liveIds(fnId).slice(0, MAX_INSTANCES);
    this.maps.instances.set(fnId, { count: ids.length, inst: Array.from({ length: MAX_INSTANCES }, (_, i) => ids[i] ?? 0) });
  }
}
