/**
 * The descriptor-level measurement shared by the loop drivers: `inflight` requests circulate
 * through the chain, each reissued as soon as it returns, for a warm-up and then a measured
 * window. Latency is per round trip (issue to reply); CPU is read from /proc for the chain's
 * processes and the driver itself over exactly the measured window.
 *
 * With `cpus` (a taskset list), the driver and every process of the chain are confined to those
 * CPUs for the run, and given all of them back after: both variants of a pair then run in the
 * same layout, and the ratio is the transport's, not where the scheduler happened to put each
 * process (on this 2-vCPU VM a wakeup across CPUs costs ~10x one on the same CPU).
 */
import { ALL_CPUS, cpuSeconds, pin, totalCpu } from '../proc.ts';

export interface LoopResult {
  roundTrips: number;
  seconds: number;
  rt_per_s: number;
  p50_us: number;
  p99_us: number;
  /** CPU seconds of the chain's processes, and of the driver, over the window. */
  cpu_chain_s: number;
  cpu_driver_s: number;
  errors: number;
}

export interface LoopOptions {
  inflight: number;
  warmupMs: number;
  measureMs: number;
  /** The chain's processes (the driver adds itself). */
  chainPids: number[];
  /** Confine the driver and the chain to these CPUs (taskset list, e.g. "0") for the run. */
  cpus?: string;
  /** Sends request `slot` (queued; `flush` writes). */
  issue(slot: number): void;
  flush(): void;
  done(r: LoopResult): void;
}

export class Loop {
  private readonly started: Float64Array;
  private samples = new Float64Array(1 << 20);
  private n = 0;
  private errors = 0;
  private phase: 'warmup' | 'measure' | 'drain' | 'done' = 'warmup';
  private outstanding = 0;
  private t0 = 0;
  private t1 = 0;
  private cpu0 = { chain: 0, driver: 0 };
  private cpu1 = { chain: 0, driver: 0 };

  constructor(private readonly o: LoopOptions) {
    this.started = new Float64Array(o.inflight);
  }

  start(): void {
    if (this.o.cpus) pin([process.pid, ...this.o.chainPids], this.o.cpus);
    for (let s = 0; s < this.o.inflight; s++) this.send(s);
    this.o.flush();
    setTimeout(() => {
      this.cpu0 = this.cpu();
      this.t0 = performance.now();
      this.phase = 'measure';
      setTimeout(() => {
        this.t1 = performance.now();
        this.cpu1 = this.cpu();
        this.phase = 'drain';
        // Requests lost in a broken chain must not hang the bench.
        setTimeout(() => this.finish(), 2000).unref();
        if (this.outstanding === 0) this.finish();
      }, this.o.measureMs);
    }, this.o.warmupMs);
  }

  /** Request `slot` came back (`ok`: with the expected answer). Call `afterRead` once per read. */
  reply(slot: number, ok: boolean): void {
    this.outstanding--;
    if (this.phase === 'measure') {
      if (this.n === this.samples.length) {
        const bigger = new Float64Array(this.samples.length * 2);
        bigger.set(this.samples);
        this.samples = bigger;
      }
      this.samples[this.n++] = (performance.now() - this.started[slot]!) * 1000;
      if (!ok) this.errors++;
    }
    if (this.phase === 'warmup' || this.phase === 'measure') this.send(slot);
    else if (this.phase === 'drain' && this.outstanding === 0) this.finish();
  }

  afterRead(): void {
    this.o.flush();
  }

  private send(slot: number): void {
    this.started[slot] = performance.now();
    this.outstanding++;
    this.o.issue(slot);
  }

  private cpu(): { chain: number; driver: number } {
    return { chain: totalCpu(this.o.chainPids), driver: cpuSeconds(process.pid) };
  }

  private finish(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    if (this.o.cpus) pin([process.pid, ...this.o.chainPids], ALL_CPUS);
    const s = this.samples.subarray(0, this.n).sort();
    const pct = (p: number) => (this.n ? s[Math.min(this.n - 1, Math.floor((p / 100) * this.n))]! : Number.NaN);
    const seconds = (this.t1 - this.t0) / 1000;
    this.o.done({
      roundTrips: this.n,
      seconds,
      rt_per_s: this.n / seconds,
      p50_us: pct(50),
      p99_us: pct(99),
      cpu_chain_s: this.cpu1.chain - this.cpu0.chain,
      cpu_driver_s: this.cpu1.driver - this.cpu0.driver,
      errors: this.errors,
    });
  }
}

/** `--name value` arguments of a driver. */
export function args(): Record<string, string> {
  const out: Record<string, string> = {};
  const a = process.argv.slice(2);
  for (let i = 0; i + 1 < a.length; i += 2) out[a[i]!.replace(/^--/, '')] = a[i + 1]!;
  return out;
}
