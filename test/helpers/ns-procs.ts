/**
 * Processes in network namespaces the tests made (agents, load clients, raw peers): start one,
 * collect what it printed, stop it, wait for a condition with the agents' logs in the failure.
 * Shared by the multi-node kernel tests.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/** `args` run inside namespace `ns` (nsenter: the mounts stay the test's own). */
export function nsRun(ns: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn('nsenter', [`--net=/run/netns/${ns}`, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Everything `child` prints, once it has exited. */
export function collect(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => out.push(c));
  child.stderr!.on('data', (c: Buffer) => err.push(c));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })));
}

/** Signals the holder's child and waits (at most 20 s) for it to exit; the holder then has none. */
export async function stopChild(holder: { child: ChildProcess | null }, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const c = holder.child;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill(signal);
  // A child that does not exit in time is killed: one stuck at exit must not keep the test
  // runner (and CI) waiting forever.
  if ((await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)])) === false) {
    c.kill('SIGKILL');
    await Promise.race([exited, sleep(5000)]);
  }
  holder.child = null;
}

/** Polls `ok` every 100 ms; after `ms`, fails naming `what`, with the last lines of each log. */
export async function until(what: string, ok: () => boolean, ms: number, logs: () => { name: string; log: string[] }[]): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${logs().map((n) => `--- ${n.name}\n${n.log.slice(-15).join('\n')}`).join('\n')}`);
    await sleep(100);
  }
}
