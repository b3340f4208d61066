/**
 * How every bpfctl command talks to its caller: readable tables for people, JSON for scripts
 * (`--json`), progress and errors on stderr. Commands never call console.* directly, so the CLI
 * runs in-process in tests with captured streams.
 */
import Table from 'cli-table3';

export interface Sink {
  write(chunk: string): unknown;
}

export interface Output {
  readonly json: boolean;
  readonly stdout: Sink;
  readonly stderr: Sink;
  /** A table for people; with --json the rows themselves are printed as a JSON array. */
  table(rows: readonly object[], columns?: readonly string[], title?: string): void;
  /** Key/value pairs for people; the object itself with --json. */
  record(obj: object, title?: string): void;
  /** Print a value as JSON (always JSON). */
  printJson(value: unknown): void;
  /** One line of text for people; ignored with --json unless `always`. */
  line(text: string, always?: boolean): void;
  /** Progress of a long operation, on stderr so it never mixes with results. */
  progress(text: string): void;
}

export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  return value;
}

export function formatCell(value: unknown): string {
  if (value === undefined || value === null) return '-';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  if (Array.isArray(value) && value.every((v) => typeof v !== 'object' || v === null)) return value.join(',');
  return JSON.stringify(value, jsonReplacer);
}

export function createOutput(opts: { json: boolean; pretty?: boolean; quiet?: boolean; stdout?: Sink; stderr?: Sink }): Output {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  // One document per line with --json (bpftool's -j), indented with --pretty (its -p).
  const printJson = (value: unknown) => stdout.write(`${JSON.stringify(value, jsonReplacer, opts.pretty ? 2 : undefined)}\n`);
  return {
    json: opts.json,
    stdout,
    stderr,
    printJson,
    table(objs, columns, title) {
      if (opts.json) return void printJson(objs);
      const rows = objs as readonly Record<string, unknown>[];
      const cols = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
      if (title) stdout.write(`${title}\n`);
      if (rows.length === 0) return void stdout.write('(none)\n');
      // No rule between body rows: status tables are read down a column.
      const t = new Table({ head: [...cols], style: { head: [], border: [] }, chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' } });
      for (const r of rows) t.push(cols.map((c) => formatCell(r[c])));
      stdout.write(`${t.toString()}\n`);
    },
    record(obj, title) {
      if (opts.json) return void printJson(obj);
      if (title) stdout.write(`${title}\n`);
      const width = Math.max(0, ...Object.keys(obj).map((k) => k.length));
      for (const [k, v] of Object.entries(obj)) stdout.write(`  ${k.padEnd(width)}  ${formatCell(v)}\n`);
    },
    line(text, always = false) {
      if (!opts.json || always) stdout.write(`${text}\n`);
    },
    progress(text) {
      if (!opts.quiet) stderr.write(`${text}\n`);
    },
  };
}
