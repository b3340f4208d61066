/**
 * `bpfctl top POLICY`: live requests/s, bytes/s and drops per function and route, computed from
 * two readings of the per-CPU counter maps one interval apart. With --json, one JSON object per
 * refresh (NDJSON) for scripts.
 */
import { type PolicyStatus, policyStatus } from '../../deploy/status.ts';
import { type Args, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

interface TopArgs {
  policy: string;
  interval: number;
  count?: number;
}

interface Rate {
  kind: 'route' | 'function';
  name: string;
  detail: string;
  msgs_per_s: number;
  bytes_per_s: number;
  drops_per_s: number;
  msgs: number;
  drops: number;
}

export function rates(prev: PolicyStatus, cur: PolicyStatus, seconds: number): Rate[] {
  const per = (a: number, b: number) => Math.max(0, Math.round((b - a) / seconds));
  const rows: Rate[] = [];
  for (const r of cur.routes) {
    const p = prev.routes.find((x) => x.id === r.id) ?? r;
    rows.push({ kind: 'route', name: r.name, detail: r.functions.join(' -> '), msgs_per_s: per(p.msgs, r.msgs), bytes_per_s: per(p.bytes, r.bytes), drops_per_s: per(p.drops, r.drops), msgs: r.msgs, drops: r.drops });
  }
  for (const f of cur.functions) {
    const p = prev.functions.find((x) => x.id === f.id) ?? f;
    rows.push({ kind: 'function', name: f.name, detail: `${f.live.length}/${f.instances} live`, msgs_per_s: per(p.msgs, f.msgs), bytes_per_s: per(p.bytes, f.bytes), drops_per_s: per(p.drops, f.drops), msgs: f.msgs, drops: f.drops });
  }
  return rows;
}

export const topCommand = defineCommand({
  ...usage('top'),
  builder: (y) =>
    y
      .positional('policy', { type: 'string', demandOption: true })
      .option('interval', { type: 'number', default: 1, describe: 'seconds between refreshes' })
      .option('count', { type: 'number', describe: 'stop after this many refreshes (default: until Ctrl-C)' }),
  handler: async (argv: Args<TopArgs>) => {
    const { out } = argv;
    const ms = Math.max(0.1, argv.interval) * 1000;
    let prev = policyStatus(argv.policy, undefined, { objects: false });
    let prevAt = performance.now();
    let stopped = false;
    const stop = () => {
      stopped = true;
    };
    process.once('SIGINT', stop);
    try {
      for (let i = 0; !stopped && (argv.count === undefined || i < argv.count); i++) {
        await new Promise((r) => setTimeout(r, ms));
        const cur = policyStatus(argv.policy, undefined, { objects: false });
        const now = performance.now();
        const rows = rates(prev, cur, (now - prevAt) / 1000);
        if (out.json) {
          out.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), policy: argv.policy, rows })}\n`);
        } else {
          // Redraw in place on a terminal; append when piped so logs stay readable.
          if ((out.stdout as NodeJS.WriteStream).isTTY) out.stdout.write('\x1b[H\x1b[2J');
          out.line(`bpfctl top ${argv.policy}   ${new Date().toLocaleTimeString()}   (every ${argv.interval}s, Ctrl-C to quit)`);
          out.table(rows, ['kind', 'name', 'detail', 'msgs_per_s', 'bytes_per_s', 'drops_per_s', 'msgs', 'drops']);
        }
        prev = cur;
        prevAt = now;
      }
    } finally {
      process.off('SIGINT', stop);
    }
  },
});
