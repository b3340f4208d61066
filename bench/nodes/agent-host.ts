/**
 * One node's `bpfctl agent run`, for the nodes bench: `agent-host.ts <agent run args...>` is
 * `bpfctl agent run <args...>` in this process (the CLI's main, from the sources under tsx, as the
 * chain bench runs bpfctl), started by the bench inside the node's namespace (nsenter). What this
 * adds: when the bench goes away, even killed outright, its end of our stdin closes, and that
 * becomes the SIGTERM the agent stops on (chain, node-link, pins, pool, cgroup, status file), so
 * no agent outlives the bench. And a V8 CPU profile of the agent on request (stdin lines
 * `cpu-prof start` and `cpu-prof stop FILE`, answered `cpu-prof written FILE`), taken through the
 * inspector once the chain is up: `node --cpu-prof` samples with SIGPROF from the start, and a
 * signal pending during BPF_PROG_LOAD makes the verifier give up (EAGAIN).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { main } from '../../src/cli/main.ts';

let session: Session | null = null;

async function onLine(line: string): Promise<void> {
  const m = /^cpu-prof (start|stop)(?: (.+))?$/.exec(line.trim());
  if (!m) return;
  if (m[1] === 'start' && !session) {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  } else if (m[1] === 'stop' && session && m[2]) {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    session = null;
    writeFileSync(m[2], JSON.stringify(profile));
    process.stdout.write(`cpu-prof written ${m[2]}\n`);
  }
}

let partial = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c: string) => {
  partial += c;
  for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
    void onLine(partial.slice(0, nl)).catch((err) => process.stderr.write(`agent-host: cpu-prof: ${(err as Error).message}\n`));
    partial = partial.slice(nl + 1);
  }
});
// With the bench gone, so are the read ends of our stdout and stderr: the agent's last lines as it
// stops would fail with EPIPE and, unhandled, end the process before it has removed anything.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});
process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.on('error', () => process.kill(process.pid, 'SIGTERM'));
const code = await main(['agent', 'run', ...process.argv.slice(2)]);
process.exit(code);
