/**
 * One instance slot (function id + instance id, i.e. one `socks` key) and the process filling
 * it. A slot outlives its processes: a process that dies is replaced, with growing delays while
 * it keeps dying, under the same key, so the kernel's view of the function never changes shape.
 *
 * Registration: a TypeScript process (function or gateway) hands its chain socket to the
 * supervisor over its own IPC channel (`bpfctl:register`), and the supervisor inserts it under
 * this slot's key. The message's claims are ignored: the key is the slot's, and only the process
 * the slot started has that channel. A C process gets a socket the supervisor connected and
 * inserted before it started (launch.ts).
 *
 * A failure to start (spawn, connect) is this slot's alone: it is logged and retried with the
 * same backoff as a crash; it never reaches the supervisor as an exception.
 */
import type { ChildProcess } from 'node:child_process';
import type net from 'node:net';
import type { Readable } from 'node:stream';
import { eachLine, Tail } from './lines.ts';

export type SlotState = 'starting' | 'ready' | 'restarting' | 'stopped' | 'failed';

/** How a started process says it is registered. */
export type ReadySignal = 'ipc' | 'fd3';

export interface Launch {
  child: ChildProcess;
  ready: ReadySignal;
  /** Messages to a process without an IPC channel (the native gateway's control pipe). */
  send?: (message: unknown) => void;
}

/** `key=value` words of an fd-3 ready line ("ready gateway 0 123 port=8080"): numbers where numeric. */
function readyInfo(line: string): Record<string, unknown> {
  const info: Record<string, unknown> = {};
  for (const w of line.split(' ')) {
    const eq = w.indexOf('=');
    if (eq <= 0) continue;
    const v = w.slice(eq + 1);
    info[w.slice(0, eq)] = /^\d+$/.test(v) ? Number(v) : v;
  }
  return info;
}

/** What a slot needs from its supervisor. */
export interface SlotHost {
  /** socks[slot key] = fd (a socket the slot's own process handed over, connected from localPort). */
  register(slot: Slot, fd: number, localPort?: number): void;
  /** The slot's process registered: its instance may be picked by the sk_msg program. */
  up(slot: Slot): void;
  /** The slot's process exited (`planned`: it was being stopped): no new traffic to it; its pool buffers are reclaimed. */
  down(slot: Slot, pid: number, planned: boolean): void;
  log(line: string): void;
}

/** A request-chain function, a gateway, a packet function (docs/packet-chains.md) or pktio. */
export type SlotKind = 'function' | 'gateway' | 'packet' | 'pktio';

export interface SlotInfo {
  kind: SlotKind;
  name: string;
  fnId: number;
  instance: number;
  pid: number | null;
  state: SlotState;
  restarts: number;
  /** Why the last process of this slot ended or could not start (null while none failed). */
  lastError: string | null;
  /** Extra data the process sent with its ready message (the gateway: its HTTP port). */
  info: Record<string, unknown>;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** A process that lived this long before dying is treated as healthy: its replacement starts at once. */
const HEALTHY_MS = 10_000;

export class Slot {
  state: SlotState = 'starting';
  restarts = 0;
  lastError: string | null = null;
  info: Record<string, unknown> = {};
  private child: ChildProcess | null = null;
  private sender: ((message: unknown) => void) | null = null;
  private backoff = BACKOFF_MIN_MS;
  private timer: NodeJS.Timeout | null = null;
  private readyTimer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private closed: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly tail = new Tail();
  private firstReady: { resolve: () => void; reject: (e: Error) => void } | null = null;
  /** Resolves at the first registration; rejects if the first process dies before it (startup fails fast). */
  readonly ready: Promise<void>;

  constructor(
    readonly kind: SlotKind,
    readonly name: string,
    readonly fnId: number,
    readonly instance: number,
    private readonly launch: (slot: Slot) => Launch | Promise<Launch>,
    private readonly host: SlotHost,
    private readonly readyTimeoutMs: number,
  ) {
    this.ready = new Promise((resolve, reject) => {
      this.firstReady = { resolve, reject };
    });
    // Awaited by startChain; a rejection nobody awaits (stop during startup) must not crash.
    this.ready.catch(() => {});
  }

  get label(): string {
    return `${this.name}#${this.instance}`;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** A message to the slot's process over its IPC channel (dropped when it has none or it is gone). */
  send(message: unknown): void {
    const c = this.child;
    if (this.sender) this.sender(message);
    else if (c?.connected) c.send(message as object, (err: Error | null) => void err);
  }

  snapshot(): SlotInfo {
    return { kind: this.kind, name: this.name, fnId: this.fnId, instance: this.instance, pid: this.pid, state: this.state, restarts: this.restarts, lastError: this.lastError, info: { ...this.info } };
  }

  /** Starts a process for the slot. Never rejects: a failure is retried (or fails `ready` the first time). */
  async start(): Promise<void> {
    if (this.stopping) return;
    this.state = this.restarts ? 'restarting' : 'starting';
    this.startedAt = Date.now();
    let launched: Launch;
    try {
      launched = await this.launch(this);
    } catch (err) {
      this.lastError = `cannot start: ${(err as Error).message}`;
      this.host.log(`[${this.label}] ${this.lastError}`);
      if (!this.failFirst(new Error(`${this.label}: cannot start: ${(err as Error).message}`))) this.scheduleRestart();
      return;
    }
    if (this.stopping) {
      launched.child.kill('SIGKILL');
      return;
    }
    const child = launched.child;
    this.child = child;
    this.sender = launched.send ?? null;
    this.startedAt = Date.now();
    const forward = (line: string) => {
      this.tail.push(line);
      this.host.log(line);
    };
    eachLine(child.stdout, forward);
    eachLine(child.stderr, forward);
    if (launched.ready === 'ipc') {
      child.on('message', (m: { type?: string; token?: unknown } & Record<string, unknown>, handle?: unknown) => {
        if (m?.type === 'bpfctl:ready') this.onReady(child, m);
        else if (m?.type === 'bpfctl:register') this.onRegister(child, m.token, handle as net.Socket | undefined);
      });
      // An IPC channel that breaks as the child dies must not take the supervisor down.
      child.on('error', (err) => this.host.log(`[${this.label}] ${err.message}`));
    } else {
      eachLine(child.stdio[3] as Readable | null, (line) => {
        if (line.startsWith('ready ')) this.onReady(child, readyInfo(line));
      });
    }
    child.once('exit', (code, signal) => this.onExit(child, code, signal));
    this.closed = new Promise((r) => child.once('close', () => r()));
    this.readyTimer = setTimeout(() => {
      if (this.child !== child || this.state === 'ready') return;
      this.host.log(`[${this.label}] not registered after ${this.readyTimeoutMs} ms; killing pid ${child.pid}`);
      child.kill('SIGKILL');
    }, this.readyTimeoutMs);
  }

  /**
   * From now on a dying process is not replaced. Synchronous, so a Ctrl-C that reaches the
   * instances too (the whole process group) is not mistaken for a crash.
   */
  halt(): void {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.failFirst(new Error(`${this.label}: stopped before it was ready`));
  }

  /** Stops the process (SIGTERM, then SIGKILL after `graceMs`) and never restarts it. */
  async stop(graceMs: number): Promise<void> {
    this.halt();
    const child = this.child;
    if (child) {
      await this.end(child, graceMs);
      // 'close', not 'exit': the pipes to the child are closed too, so a stopped chain holds no
      // fds (bounded: a grandchild could keep a pipe open forever).
      await Promise.race([this.closed, new Promise((r) => setTimeout(r, 1000).unref())]);
    }
    this.state = 'stopped';
  }

  private async end(child: ChildProcess, graceMs: number): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(kill);
    }
  }

  /**
   * The slot's own process hands over its chain socket. The supervisor's copy of the fd is
   * closed again right after the insert (destroy, never end: a FIN would close the socket for the
   * process too), within this callback, so the supervisor never reads from it.
   */
  private onRegister(child: ChildProcess, token: unknown, handle: net.Socket | undefined): void {
    if (this.child !== child) {
      handle?.destroy();
      return;
    }
    let error: string | null = null;
    try {
      const fd = (handle as unknown as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
      if (typeof fd !== 'number' || fd < 0) throw new Error('no socket came with the registration');
      this.host.register(this, fd, handle?.localPort);
    } catch (err) {
      error = (err as Error).message;
    } finally {
      handle?.destroy();
    }
    if (child.connected) child.send(error ? { type: 'bpfctl:refused', token, error } : { type: 'bpfctl:registered', token });
  }

  private onReady(child: ChildProcess, m: Record<string, unknown>): void {
    if (this.child !== child) return;
    if (this.readyTimer) clearTimeout(this.readyTimer);
    this.readyTimer = null;
    const { type: _t, ...rest } = m;
    this.info = rest;
    this.state = 'ready';
    this.host.up(this);
    this.firstReady?.resolve();
    this.firstReady = null;
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    if (this.readyTimer) clearTimeout(this.readyTimer);
    this.readyTimer = null;
    const pid = child.pid ?? 0;
    this.host.down(this, pid, this.stopping);
    if (this.stopping) {
      this.state = 'stopped';
      return;
    }
    const why = signal ? `signal ${signal}` : `exit code ${code}`;
    const last = this.tail.text().split('\n').filter(Boolean).pop();
    this.lastError = `pid ${pid} died (${why})${last ? `: ${last.slice(0, 200)}` : ''}`;
    this.host.log(`[${this.label}] pid ${pid} died (${why})`);
    const tail = this.tail.text();
    if (!this.failFirst(new Error(`${this.label} (pid ${pid}) died before it registered (${why})${tail ? `:\n${tail}` : ''}`))) this.scheduleRestart();
  }

  /**
   * Startup fails fast: a process that cannot even start once is a bug (a handler that does not
   * import, a bad build), not bad luck, and restarting it forever would hide that. True when this
   * was the first process (the slot is now failed); later deaths are restarted.
   */
  private failFirst(err: Error): boolean {
    if (!this.firstReady) return false;
    const f = this.firstReady;
    this.firstReady = null;
    if (!this.stopping) this.state = 'failed';
    f.reject(err);
    return true;
  }

  private scheduleRestart(): void {
    if (this.stopping) return;
    const lived = Date.now() - this.startedAt;
    if (lived >= HEALTHY_MS) this.backoff = BACKOFF_MIN_MS;
    const delay = this.backoff;
    this.backoff = Math.min(BACKOFF_MAX_MS, this.backoff * 2);
    this.state = 'restarting';
    this.timer = setTimeout(() => {
      this.timer = null;
      this.restarts++;
      void this.start();
    }, delay);
  }
}
