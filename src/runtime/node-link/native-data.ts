/**
 * The agent's side of the native data path (native/node-link.c): starts the process, hands it the
 * sockets (chain sockets after their registration, authenticated data connections) with
 * SCM_RIGHTS over its control socket, and tells it what changes (peers down, gateway owners).
 *
 * A socket handed over is closed in this process without a shutdown or a reset: the data path's
 * descriptor keeps the connection (and, for a chain socket, its place in `socks`) alive.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type net from 'node:net';
import { socketFd } from '../sdk/link.ts';
import { sendWithFd } from './fd-pass.ts';

export interface NativeCounters {
  sent: number;
  received: number;
  failedFast: number;
  afterDown: number;
  stale: number;
  noBuffer: number;
  unknownRoute: number;
  malformed: number;
  pending: number;
}

export interface NativeDataPathOptions {
  exe: string;
  poolPath: string;
  pinDir: string;
  /** Every node, sorted: a peer is named by its index here. */
  nodes: string[];
  gateways: number[];
  log(line: string): void;
  /** The data connection to this peer failed (a write or the peer closing it). */
  onLost(peer: string): void;
  /** The process ended while the node-link was open. */
  onExit(why: string): void;
}

export class NativeDataPath {
  private child: ChildProcess | null = null;
  private ctl: net.Socket | null = null;
  private ctlFd = -1;
  private closing = false;
  private lines = '';
  private gwSig = '';
  private waiting: (() => void)[] = [];
  /** The counters of the last status line (`refresh` asks for one). */
  counters: NativeCounters = { sent: 0, received: 0, failedFast: 0, afterDown: 0, stale: 0, noBuffer: 0, unknownRoute: 0, malformed: 0, pending: 0 };

  constructor(private readonly o: NativeDataPathOptions) {}

  /** Starts the process and waits until it is ready for sockets. */
  start(): Promise<void> {
    const child = spawn(this.o.exe, [this.o.poolPath, this.o.pinDir, this.o.nodes.join(','), this.o.gateways.join(',')], { stdio: ['ignore', 'inherit', 'inherit', 'pipe'] });
    this.child = child;
    const ctl = child.stdio[3] as net.Socket;
    this.ctl = ctl;
    this.ctlFd = socketFd(ctl);
    return new Promise((resolve, reject) => {
      let ready = false;
      ctl.setEncoding('utf8');
      ctl.on('data', (chunk: string) => {
        this.lines += chunk;
        let nl = this.lines.indexOf('\n');
        while (nl >= 0) {
          const line = this.lines.slice(0, nl);
          this.lines = this.lines.slice(nl + 1);
          if (line === 'R' && !ready) {
            ready = true;
            resolve();
          } else this.onLine(line);
          nl = this.lines.indexOf('\n');
        }
      });
      ctl.on('error', () => {});
      child.once('error', (err) => {
        if (!ready) reject(err);
      });
      child.once('exit', (code, signal) => {
        const why = signal ? `killed by ${signal}` : `exited with ${code}`;
        if (!ready) reject(new Error(`the node-link data path ${why} before it was ready`));
        else if (!this.closing) this.o.onExit(why);
      });
    });
  }

  private onLine(line: string): void {
    if (line.startsWith('S ')) {
      try {
        this.counters = JSON.parse(line.slice(2)) as NativeCounters;
      } catch {
        // a torn line cannot happen on a stream read line by line; ignore rather than throw in a data handler
      }
      for (const w of this.waiting.splice(0)) w();
    } else if (line.startsWith('L ')) this.o.log(`[node-link] ${line.slice(2)}`);
    else if (line.startsWith('E ')) {
      const peer = this.o.nodes[Number(line.slice(2))];
      if (peer) this.o.onLost(peer);
    }
  }

  private send(line: string): void {
    if (this.ctl && !this.ctl.destroyed) this.ctl.write(`${line}\n`);
  }

  /**
   * Hands a socket over with a control line, then closes this process's descriptor of it (no
   * shutdown, no reset: the connection lives on in the data path). Lines written before it go
   * first: the control socket is written in order, and this one bypasses Node's queue only once
   * that queue is empty.
   */
  private hand(line: string, sock: net.Socket): void {
    if (!this.ctl || this.ctl.destroyed) {
      sock.destroy();
      return;
    }
    const fd = socketFd(sock);
    const doIt = (): void => {
      try {
        sendWithFd(this.ctlFd, Buffer.from(`${line}\n`), fd);
      } finally {
        sock.destroy();
      }
    };
    if (this.ctl.writableLength === 0) doIt();
    else this.ctl.once('drain', doIt);
  }

  addChainSocket(fnId: number, inst: number, sock: net.Socket): void {
    sock.pause();
    this.hand(`C ${fnId} ${inst}`, sock);
  }

  closeChainSocket(fnId: number, inst: number): void {
    this.send(`X ${fnId} ${inst}`);
  }

  dataChannel(peer: string, dir: 'out' | 'in', sock: net.Socket): void {
    const i = this.o.nodes.indexOf(peer);
    if (i < 0) return void sock.destroy();
    this.hand(`${dir === 'out' ? 'O' : 'I'} ${i}`, sock);
  }

  /** A peer is down: its data connections are closed and what waits on it fails (503). */
  peerDown(peer: string): void {
    const i = this.o.nodes.indexOf(peer);
    if (i >= 0) this.send(`D ${i}`);
  }

  /** Which node owns each other node's gateway id. */
  setGatewayOwners(owners: Map<number, string>): void {
    const sig = [...owners].map(([g, p]) => `${g}=${this.o.nodes.indexOf(p)}`).join(',');
    if (sig === this.gwSig) return;
    this.gwSig = sig;
    this.send(`G ${sig}`);
  }

  sweep(): void {
    this.send('W');
  }

  /** Asks for the counters; `counters` holds them once the answer is read, which the promise waits for (at most 500 ms). */
  refresh(): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 500);
      this.waiting.push(() => {
        clearTimeout(t);
        resolve();
      });
      this.send('S');
    });
  }

  /** Ends the process and waits for it: every socket it holds is closed with it. */
  async close(): Promise<void> {
    this.closing = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    this.send('Q');
    const t = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(t);
    this.ctl?.destroy();
  }
}
