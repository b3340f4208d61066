/**
 * Processes inside a namespace node: `nsenter --net=/run/netns/NS <cmd>` (nsenter execs, so the
 * child's pid is the program's own and the chain bench's process registry, CPU accounting and
 * stdin-close exit all work as for a local child), and a one-request check from inside a node.
 */
import { execFile } from 'node:child_process';
import { type Child, spawnChild } from '../chain/proc.ts';

export const nsenter = (ns: string) => ['nsenter', `--net=/run/netns/${ns}`];

/** `node [nodeArgs] --import tsx <script> ...args` inside namespace `ns`. */
export function spawnTsIn(ns: string, name: string, script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Child {
  const [cmd, ...pre] = nsenter(ns);
  return spawnChild(name, cmd!, [...pre, process.execPath, ...nodeArgs, '--import', 'tsx', script, ...args], env);
}

/** One POST of `body` to `url` from inside `ns`: the status and the answer. */
export function postFrom(ns: string, url: string, body: string): Promise<{ status: number; body: string }> {
  const src = `const r = await fetch(${JSON.stringify(url)}, { method: 'POST', body: ${JSON.stringify(body)}, headers: { 'content-type': 'application/octet-stream' } });
process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() }));`;
  const [cmd, ...pre] = nsenter(ns);
  return new Promise((resolve, reject) => {
    execFile(cmd!, [...pre, process.execPath, '--input-type=module', '-e', src], { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`POST ${url} from ${ns} failed: ${(stderr || err.message).trim().split('\n').slice(-3).join(' ')}`));
      resolve(JSON.parse(stdout) as { status: number; body: string });
    });
  });
}
