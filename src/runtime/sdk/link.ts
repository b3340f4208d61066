/**
 * The socket that ties one instance (a function's, or the gateway's) to the chain: a TCP
 * connection to the hub whose local end sits in the `socks` sockhash. Data never travels to the
 * hub: the chain's sk_msg program redirects each descriptor this socket sends into the next hop's
 * socket (ingress), and descriptors for this instance arrive in this socket's receive queue.
 *
 * Registration (docs/internals.md, trust model): only the supervisor puts sockets into `socks`,
 * and only sockets it got from the process it started for that slot, so no other process (one in
 * the policy cgroup included) can take over or evict a registration.
 * - 'ipc': connect from any port, then hand the socket to the supervisor over the Node IPC channel
 *   (`process.send(msg, socket, { keepOpen: true })`); the supervisor inserts its copy of the fd
 *   under the key *it* assigned this child, closes the copy and answers `bpfctl:registered`.
 * - 'fd': the supervisor connected the socket, inserted it and passed it down (inherited fd). It
 *   cannot be replaced from here: on failure the link switches to 'ipc' when there is an IPC
 *   channel, and otherwise reports `fatal` (the process exits 75 so the supervisor restarts it).
 * - 'callback': the caller inserts the fd itself (a root process holding the maps: the gateway
 *   inside `bpfctl run`, tests).
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { cut } from '../socket-cut.ts';

export type RegisterMode = 'ipc' | 'fd' | 'callback';

export interface LinkOptions {
  mode: RegisterMode;
  hubPort: number;
  hubHost?: string;
  /** fd: the inherited, already registered socket. */
  sockFd?: number;
  /** callback: inserts `fd` into `socks` (synchronously, or before the promise resolves); `localPort` is the socket's. */
  register?: (fd: number, localPort?: number) => void | Promise<void>;
  /** Sent along with an IPC registration (the supervisor ignores the claims and uses its own key). */
  identity?: Record<string, unknown>;
  /** Bytes arrived (`buf` is reused after the call returns). */
  onData(buf: Buffer, len: number): void;
  /** The socket is registered: sends may go out. */
  onUp(): void;
  /** The socket failed; sends must wait (`onUp` follows after a reconnect). */
  onDown(err: Error | null): void;
  /** No way to get a registered socket again (fd mode without IPC). */
  onFatal(err: Error): void;
  log(msg: string): void;
}

const READ_BUF = 64 * 1024;
const BACKOFF_MIN = 20;
const BACKOFF_MAX = 2000;
const IPC_ACK_TIMEOUT = 5000;

interface IpcMessage {
  type?: string;
  token?: number;
  error?: string;
}

/** The kernel fd behind a net.Socket (Node keeps it on the handle; it is not public API). */
export function socketFd(sock: net.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no file descriptor');
  return fd;
}

export class Link {
  private sock: net.Socket | null = null;
  private mode: RegisterMode;
  private up = false;
  private closed = false;
  private backoff = BACKOFF_MIN;
  private timer: NodeJS.Timeout | null = null;
  private ipcToken = 0;
  private ipcWait: { token: number; resolve: (err: string | null) => void } | null = null;
  private readonly readBuf = Buffer.allocUnsafe(READ_BUF);
  // Writes that fail are counted, not thrown: a failed sk_msg send (gotcha 4) only means
  // "reconnect", and an unhandled 'error' would kill the process (gotcha 8).
  readonly counters = { connects: 0, failures: 0, writes: 0, writeErrors: 0 };

  constructor(private readonly o: LinkOptions) {
    this.mode = o.mode;
    if (this.mode === 'fd' && o.sockFd === undefined) throw new Error('fd registration needs sockFd');
    if (this.mode === 'callback' && !o.register) throw new Error('callback registration needs register()');
    if (this.mode === 'ipc' && !process.send) throw new Error('ipc registration needs an IPC channel (spawn with stdio "ipc")');
  }

  get isUp(): boolean {
    return this.up;
  }

  get localPort(): number | undefined {
    return this.sock?.localPort;
  }

  get fd(): number | null {
    return this.sock ? socketFd(this.sock) : null;
  }

  start(): void {
    // Only these modes talk to the supervisor; a 'message' listener would also keep an unrelated
    // IPC channel (e.g. a test runner's) referenced.
    if (process.send && (this.mode === 'ipc' || this.mode === 'fd')) process.on('message', this.onIpc);
    if (this.mode === 'fd') this.adopt(this.o.sockFd!);
    else this.connect();
  }

  /** Writes one batch; false when the link is down (the caller keeps or drops the batch). */
  write(bytes: Buffer): boolean {
    const s = this.sock;
    if (!s || !this.up) return false;
    this.counters.writes++;
    s.write(bytes);
    return true;
  }

  /**
   * Nothing is waiting to be written: the last `write` went to the kernel before it returned (or
   * was dropped with the link down), so its bytes are not referenced any more and may be reused.
   */
  get drained(): boolean {
    const s = this.sock;
    return s === null || !this.up || s.writableLength === 0;
  }

  close(): void {
    this.closed = true;
    this.up = false;
    if (this.timer) clearTimeout(this.timer);
    process.off('message', this.onIpc);
    this.ipcWait?.resolve('closed');
    const s = this.sock;
    this.sock = null;
    // RST instead of FIN: nothing is left in TIME_WAIT.
    if (s && !s.destroyed) cut(s);
  }

  private onread = {
    buffer: this.readBuf,
    callback: (n: number, buf: Uint8Array): boolean => {
      this.o.onData(buf as Buffer, n);
      return true;
    },
  };

  private adopt(fd: number): void {
    const s = new net.Socket({ fd, readable: true, writable: true, onread: this.onread } as net.SocketConstructorOpts);
    this.wire(s);
    this.counters.connects++;
    this.markUp();
  }

  private connect(): void {
    if (this.closed) return;
    const opts: net.TcpNetConnectOpts & { onread: unknown } = {
      host: this.o.hubHost ?? '127.0.0.1',
      port: this.o.hubPort,
      noDelay: true,
      onread: this.onread,
    };
    const s = net.connect(opts as net.TcpNetConnectOpts);
    this.wire(s);
    s.once('connect', () => {
      if (this.sock !== s) return;
      this.counters.connects++;
      void this.registerSocket(s);
    });
  }

  private wire(s: net.Socket): void {
    this.sock = s;
    s.setNoDelay(true);
    s.on('error', (err) => this.fail(s, err));
    s.on('close', () => this.fail(s, null));
    // The hub never ends a connection on purpose: treat its FIN like a failure.
    s.on('end', () => this.fail(s, new Error('hub closed the connection')));
  }

  private async registerSocket(s: net.Socket): Promise<void> {
    try {
      if (this.mode === 'callback') await this.o.register!(socketFd(s), s.localPort);
      else if (this.mode === 'ipc') await this.registerIpc(s);
    } catch (err) {
      this.fail(s, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (this.sock !== s || this.closed) return;
    this.markUp();
  }

  private registerIpc(s: net.Socket): Promise<void> {
    const token = ++this.ipcToken;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done('the supervisor did not answer the registration'), IPC_ACK_TIMEOUT);
      const done = (err: string | null) => {
        clearTimeout(timer);
        if (this.ipcWait?.token === token) this.ipcWait = null;
        if (err) reject(new Error(`registration refused: ${err}`));
        else resolve();
      };
      this.ipcWait = { token, resolve: done };
      const msg = { type: 'bpfctl:register', token, pid: process.pid, localPort: s.localPort, ...this.o.identity };
      process.send!(msg, s as unknown as net.Socket, { keepOpen: true }, (err: Error | null) => {
        if (err) done(err.message);
      });
    });
  }

  private onIpc = (m: unknown): void => {
    const msg = m as IpcMessage;
    if (!msg || typeof msg !== 'object' || !this.ipcWait || msg.token !== this.ipcWait.token) return;
    if (msg.type === 'bpfctl:registered') this.ipcWait.resolve(null);
    else if (msg.type === 'bpfctl:refused') this.ipcWait.resolve(msg.error ?? 'refused');
  };

  private markUp(): void {
    this.up = true;
    this.backoff = BACKOFF_MIN;
    this.o.onUp();
  }

  private fail(s: net.Socket, err: Error | null): void {
    if (this.sock !== s) return;
    this.sock = null;
    const wasUp = this.up;
    this.up = false;
    if (!s.destroyed) cut(s);
    if (this.closed) return;
    this.counters.failures++;
    if (err) this.counters.writeErrors += (err as NodeJS.ErrnoException).code === 'EACCES' ? 1 : 0;
    this.o.log(`link ${wasUp ? 'lost' : 'not established'}: ${err?.message ?? 'closed'}; reconnecting`);
    this.o.onDown(err);
    if (this.mode === 'fd') {
      if (!process.send) {
        this.o.onFatal(new Error(`inherited socket failed (${err?.message ?? 'closed'}) and there is no IPC channel to register another`));
        return;
      }
      this.mode = 'ipc';
    }
    const delay = this.backoff;
    this.backoff = Math.min(BACKOFF_MAX, this.backoff * 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }
}
