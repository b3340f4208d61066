/**
 * How every bpfctl command talks to its caller: readable tables for people, JSON for scripts
 * (`--json`), progress and errors on stderr. Commands never call console.* directly, so the CLI
 * runs in-process in tests with captured streams.
 *
 * Tables fit 80 columns (wider only on a terminal that is wider): cells wrap rather than let a
 * line run over, since a wrapped terminal line breaks every column after it.
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
  /** Columns tables and records fit in (tableWidth). */
  readonly width: number;
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

/** Columns a table may use: 80, or the terminal's width when stdout is a terminal wider than that. */
export function tableWidth(stdout: Sink): number {
  const s = stdout as { isTTY?: boolean; columns?: number };
  return s.isTTY && typeof s.columns === 'number' && s.columns > 80 ? s.columns : 80;
}

/** Two spaces between columns: the borders of a boxed table would take a fifth of 80 columns. */
const GAP = '  ';

/** Width of the widest line of a cell. */
const cellWidth = (text: string) => Math.max(0, ...text.split('\n').map((l) => l.length));

/**
 * Breaks `text` into lines of at most `width` characters: at spaces, after a comma, slash or
 * hyphen (lists, paths, names), and inside a word only when the word alone is wider than the column.
 */
export function wrapText(text: string, width: number): string {
  if (width <= 0) return text;
  const out: string[] = [];
  for (const para of text.split('\n')) {
    // Pieces that end where a break is allowed; the spaces stay with the piece they follow.
    const pieces = para.match(/[^\s,/-]*[,/-]|[^\s,/-]+\s*|\s+/g) ?? [''];
    let line = '';
    const flush = () => {
      out.push(line.trimEnd());
      line = '';
    };
    for (let piece of pieces) {
      if ((line + piece).trimEnd().length <= width) {
        line += piece;
        continue;
      }
      if (line.trim()) flush();
      piece = piece.replace(/^\s+/, '');
      while (piece.trimEnd().length > width) {
        out.push(piece.slice(0, width));
        piece = piece.slice(width);
      }
      line = piece;
    }
    if (line.trim() || out.length === 0) flush();
  }
  return out.join('\n');
}

/**
 * Column widths that fit `budget` characters: the natural widths when they fit, else the widest
 * columns narrowed first (down to their header's longest word, then to 3), so short columns
 * (ids, counts) keep their width and long ones (paths, lists) wrap.
 */
export function fitWidths(natural: readonly number[], headers: readonly string[], budget: number): number[] {
  const widths = [...natural];
  const total = () => widths.reduce((a, b) => a + b, 0);
  for (const floorOf of [(i: number) => Math.min(natural[i]!, Math.max(3, ...headers[i]!.split(/\s+/).map((w) => w.length))), () => 3]) {
    while (total() > budget) {
      let widest = -1;
      for (let i = 0; i < widths.length; i++) if (widths[i]! > floorOf(i) && (widest < 0 || widths[i]! > widths[widest]!)) widest = i;
      if (widest < 0) break;
      widths[widest]!--;
    }
  }
  return widths;
}

/** A table as text lines fitting `width` columns: header, a rule under it, rows (wrapped cells). */
export function renderTable(rows: readonly Record<string, unknown>[], cols: readonly string[], width: number): string {
  const body = rows.map((r) => cols.map((c) => formatCell(r[c])));
  const natural = cols.map((c, i) => Math.max(cellWidth(c), ...body.map((row) => cellWidth(row[i]!))));
  const widths = fitWidths(natural, cols, width - GAP.length * (cols.length - 1));
  const t = new Table({
    head: cols.map((c, i) => wrapText(c, widths[i]!)),
    colWidths: widths,
    // Borderless, bpftool/ip style: columns apart by GAP, one rule under the header (compact:
    // the separator line is drawn only between the header and the first row).
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '─',
      'mid-mid': GAP,
      right: '',
      'right-mid': '',
      middle: GAP,
    },
    style: { head: [], border: [], compact: true, 'padding-left': 0, 'padding-right': 0 },
  });
  for (const row of body) t.push(row.map((cell, i) => wrapText(cell, widths[i]!)));
  // cli-table3 pads the last column to its width: trailing spaces are noise in a pipe.
  return t
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
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
    width: tableWidth(stdout),
    table(objs, columns, title) {
      if (opts.json) return void printJson(objs);
      const rows = objs as readonly Record<string, unknown>[];
      const cols = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
      if (title) stdout.write(`${wrapText(title, tableWidth(stdout))}\n`);
      if (rows.length === 0) return void stdout.write('(none)\n');
      stdout.write(`${renderTable(rows, cols, tableWidth(stdout))}\n`);
    },
    record(obj, title) {
      if (opts.json) return void printJson(obj);
      const width = tableWidth(stdout);
      if (title) stdout.write(`${wrapText(title, width)}\n`);
      const keyWidth = Math.max(0, ...Object.keys(obj).map((k) => k.length));
      const indent = ' '.repeat(keyWidth + 4);
      for (const [k, v] of Object.entries(obj)) {
        const text = wrapText(formatCell(v), Math.max(20, width - indent.length)).replace(/\n/g, `\n${indent}`);
        stdout.write(`  ${k.padEnd(keyWidth)}  ${text}\n`);
      }
    },
    line(text, always = false) {
      if (!opts.json || always) stdout.write(`${text}\n`);
    },
    progress(text) {
      if (!opts.quiet) stderr.write(`${text}\n`);
    },
  };
}
