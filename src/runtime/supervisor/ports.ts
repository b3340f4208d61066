/**
 * Reserved registration ports (`reg_ports`). An instance connects to the hub *from* its reserved
 * port, so the port must still be free when the instance gets round to connecting, a second or
 * so after it was chosen. Ports in the kernel's ephemeral range can be taken by any outgoing
 * connection meanwhile (an HTTP client under load makes thousands), so they are picked just below
 * that range, where the kernel never hands out ports on its own.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

const SPAN = 8192;

function ephemeralLow(): number {
  try {
    const lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(lo) && lo > SPAN + 1024) return lo;
  } catch {
    // not Linux, or /proc hidden: the kernel default
  }
  return 32768;
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

export class PortReserver {
  private readonly taken = new Set<number>();
  private readonly lo: number;
  private readonly hi: number;
  private next: number;

  constructor(private readonly host = '127.0.0.1') {
    this.hi = ephemeralLow() - 1;
    this.lo = this.hi - SPAN + 1;
    // A random start: supervisors running side by side (tests, two policies) rarely probe the same ports.
    this.next = this.lo + Math.floor(Math.random() * SPAN);
  }

  /** A port nobody listens on or is bound to right now, and that this reserver has not handed out. */
  async take(): Promise<number> {
    for (let tries = 0; tries < SPAN; tries++) {
      const p = this.next;
      this.next = p >= this.hi ? this.lo : p + 1;
      if (this.taken.has(p)) continue;
      if (await bindable(p, this.host)) {
        this.taken.add(p);
        return p;
      }
    }
    throw new Error(`no free TCP port in ${this.lo}-${this.hi} for instance registration`);
  }

  release(port: number): void {
    this.taken.delete(port);
  }
}
