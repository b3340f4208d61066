/**
 * The secrets a node-link accepts for new handshakes (protocol.ts): the current one, and after a
 * rotation the previous one until its grace period ends. Nodes see a new secret at different
 * moments (each kubelet refreshes its pods' Secret volumes on its own schedule), so for a while a
 * node that has the new one must still link with nodes that have only the old one, both ways:
 * it proves both and accepts both. Connections established before stay up whatever the secret:
 * the secret only guards the handshake.
 */

/**
 * How long the previous secret is still accepted after this node sees a new one. A kubelet
 * re-syncs each pod every syncFrequency (1 min by default) with up to 50% jitter, so the pods of
 * one DaemonSet see a Secret update up to ~90 s apart; 120 s covers that with margin. Longer
 * would keep a retired (perhaps leaked) secret usable longer for nothing.
 */
export const SECRET_GRACE_MS = 120_000;

export interface SecretRingStatus {
  /** 1 at start, +1 per accepted rotation. */
  generation: number;
  /** When this node last took a new secret (ISO), or null. */
  changedAt: string | null;
  /** Until when the previous secret is still accepted (ISO), or null when it no longer is. */
  previousAcceptedUntil: string | null;
  /** Why the last change of the secret file was not taken (unreadable, empty, too short), or null. */
  warning: string | null;
}

export class SecretRing {
  private current: Buffer;
  private previous: Buffer | null = null;
  private previousUntil = 0;
  private generation = 1;
  private changedAt: string | null = null;
  private warning: string | null = null;

  constructor(
    secret: Buffer,
    private readonly now: () => number = Date.now,
  ) {
    this.current = Buffer.from(secret);
  }

  /** The secrets accepted now, the current one first (it is the one presented first). */
  keys(): Buffer[] {
    return this.previous && this.now() < this.previousUntil ? [this.current, this.previous] : [this.current];
  }

  /** Whether `secret` is the current one. */
  isCurrent(secret: Buffer): boolean {
    return secret.equals(this.current);
  }

  /** Takes a new secret; the one it replaces is accepted for `graceMs` more. False when it is the current one already. */
  rotate(next: Buffer, graceMs: number): boolean {
    this.warning = null;
    if (next.equals(this.current)) return false;
    this.previous = this.current;
    this.previousUntil = this.now() + graceMs;
    this.current = Buffer.from(next);
    this.generation++;
    this.changedAt = new Date(this.now()).toISOString();
    return true;
  }

  /** A change of the secret file that was not taken: the current secret stays, the reason shows in status. */
  refuse(why: string): void {
    this.warning = why;
  }

  status(): SecretRingStatus {
    const grace = this.previous !== null && this.now() < this.previousUntil;
    return { generation: this.generation, changedAt: this.changedAt, previousAcceptedUntil: grace ? new Date(this.previousUntil).toISOString() : null, warning: this.warning };
  }
}
