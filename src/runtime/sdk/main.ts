/**
 * Process entry of a TypeScript function instance: `node --import tsx src/runtime/sdk/main.ts`
 * with the environment of sdk/env.ts. Registers its socket through the supervisor (IPC) and stays
 * alive blocked in epoll until killed.
 */
import { ENV } from './env.ts';
import { runFunction } from './run.ts';

function num(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got '${v}'`);
  return n;
}

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (the supervisor sets it; see src/runtime/sdk/env.ts)`);
  return v;
}

async function main(): Promise<void> {
  const inst = await runFunction({
    functionName: need(ENV.fn),
    fnId: num(ENV.fnId) ?? Number(need(ENV.fnId)),
    instance: num(ENV.inst) ?? 0,
    handlerPath: need(ENV.handler),
    handlerSource: process.env[ENV.handlerSource] || undefined,
    hubPort: num(ENV.hubPort) ?? Number(need(ENV.hubPort)),
    pinDir: need(ENV.pinDir),
    sockFd: num(ENV.sockFd),
    pool: need(ENV.pool),
    maxInFlight: num(ENV.maxInFlight),
    readyFd: num(ENV.readyFd),
  });
  const stop = () => {
    inst.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The supervisor going away closes the IPC channel: nobody would restart or reclaim for us.
  process.on('disconnect', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`bpfctl function: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
