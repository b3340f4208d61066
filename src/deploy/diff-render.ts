/**
 * A `PolicyDiff` for people: one header line, then one row per thing that changes, with the
 * subject and the change in aligned columns. Signs: `+` added, `-` removed, `~` changed live,
 * `!` needs a restart. Plain text (no colour) and no line of 100 columns or more, so it reads the
 * same in a terminal, a CI log and a golden file; scripts read `--json` instead.
 */
import type { Change, FromTo, PolicyDiff, RouteShape, TcChanged, XdpChanged, XdpRuleRef, XdpSetChange } from './diff.ts';

const MAX_LINE = 99;
/** A longer subject gets its own width rather than pushing every row's text to the right. */
const MAX_SUBJECT = 24;
const DEFAULT_METHODS = 'POST';
/**
 * Where a row's text may wrap (it prints as nothing). A wrap before `=>` puts the new value on a
 * line of its own, under the old one.
 */
const BRK = '\u0000';
const NEW = `${BRK}  =>  `;

interface Row {
  sign: '+' | '-' | '~' | '!';
  label: string;
  subject: string;
  text: string;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const shortHash = (h: string) => h.slice(0, 8);
const arrow = <T>(c: FromTo<T>, show: (v: T) => string = String) => `${show(c.from)} -> ${show(c.to)}`;
const inFlight = (v: number | null) => (v === null ? 'default' : String(v));

function chain(r: RouteShape, showMethods: boolean): string {
  const fns = r.functions.length ? r.functions.join(` ->${BRK} `) : '(no functions)';
  return showMethods ? `${fns}${BRK} [${r.methods.join(',')}]` : fns;
}

const nonDefaultMethods = (r: RouteShape) => r.methods.join(',') !== DEFAULT_METHODS;

function ruleText(r: XdpRuleRef): string {
  return `${r.name}: ${r.summary}${r.count ? '' : ' (uncounted)'}`;
}

function setText(s: XdpSetChange): string {
  if (s.change === 'removed') return `set ${s.name} (${plural(s.elementsRemoved.length, 'element')})`;
  if (s.change === 'added') return `set ${s.name} (${plural(s.elementsAdded.length, 'element')})`;
  const parts: string[] = [];
  if (s.kind) parts.push(`type ${arrow(s.kind)}`);
  if (s.maxEntries) parts.push(`maxEntries ${arrow(s.maxEntries)}`);
  const listed = [...s.elementsAdded.map((e) => `+${e}`), ...s.elementsRemoved.map((e) => `-${e}`)].join(' ');
  // Past a few elements a list stops being readable in a row; --json has all of them.
  if (listed.length <= 48) {
    if (listed) parts.push(listed);
  } else {
    parts.push(`${s.elementsAdded.length} added, ${s.elementsRemoved.length} removed`);
  }
  return `set ${s.name}: ${parts.join(', ')}`;
}

function xdpRows(c: XdpChanged | TcChanged): Row[] {
  const row = (sign: Row['sign'], text: string): Row => ({ sign, label: c.kind === 'tc-changed' ? 'tc' : 'xdp', subject: c.name, text });
  const rows: Row[] = [];
  // A link update cannot change the attach mode: the program is detached and attached again.
  if (c.kind === 'xdp-changed' && c.mode) rows.push(row('~', `mode ${arrow(c.mode)} (re-attached: a brief gap without a classifier)`));
  if (c.default) rows.push(row('~', `default ${arrow(c.default)}`));
  if (c.malformed) rows.push(row('~', `malformed ${arrow(c.malformed)}`));
  for (const r of c.rulesChanged) {
    const to = r.from.name === r.to.name ? `${r.to.summary}${r.to.count ? '' : ' (uncounted)'}` : ruleText(r.to);
    rows.push(row('~', `rule ${r.index} ${ruleText(r.from)}${NEW}${to}`));
  }
  for (const r of c.rulesAdded) rows.push(row('+', `rule ${r.index} ${ruleText(r)}`));
  for (const r of c.rulesRemoved) rows.push(row('-', `rule ${r.index} ${ruleText(r)}`));
  for (const s of c.sets) rows.push(row(s.change === 'added' ? '+' : s.change === 'removed' ? '-' : '~', setText(s)));
  return rows;
}

function rowsOf(c: Change): Row[] {
  switch (c.kind) {
    case 'gateway-scaled':
      return [{ sign: '!', label: 'gateway', subject: 'instances', text: `${arrow(c)} (needs --restart)` }];
    case 'gateway-engine-changed':
      return [{ sign: '!', label: 'gateway', subject: 'engine', text: `${arrow(c)} (needs --restart)` }];
    case 'pool-changed': {
      const rows: Row[] = [];
      if (c.bufferSize) rows.push({ sign: '!', label: 'pool', subject: 'bufferSize', text: `${arrow(c.bufferSize)} (needs --restart)` });
      if (c.bufferCount) rows.push({ sign: '!', label: 'pool', subject: 'bufferCount', text: `${arrow(c.bufferCount)} (needs --restart)` });
      return rows;
    }
    case 'function-added': {
      const mif = c.maxInFlight === null ? '' : `, maxInFlight ${c.maxInFlight}`;
      return [{ sign: '+', label: 'fn', subject: c.name, text: `${plural(c.instances, 'instance')}, ${c.language} ${c.handler}${mif}` }];
    }
    case 'function-code-changed': {
      const parts: string[] = [];
      if (c.codeHash) parts.push(arrow(c.codeHash, shortHash));
      if (c.handler) parts.push(`handler ${arrow(c.handler)}`);
      if (c.language) parts.push(`language ${arrow(c.language)}`);
      if (c.maxInFlight) parts.push(`maxInFlight ${arrow(c.maxInFlight, inFlight)}`);
      return [{ sign: '~', label: 'code', subject: c.name, text: `${parts.join(`,${BRK} `)}${BRK} (rolling replacement)` }];
    }
    case 'function-scaled':
      return [{ sign: '~', label: 'scale', subject: c.name, text: arrow(c) }];
    case 'function-placement-changed':
      return [{ sign: '~', label: 'place', subject: c.name, text: `${c.from ?? 'anywhere'}${NEW}${c.to ?? 'anywhere'}` }];
    case 'route-added':
      return [{ sign: '+', label: 'route', subject: c.name, text: chain(c, nonDefaultMethods(c)) }];
    case 'route-changed': {
      const methods = c.from.methods.join(',') !== c.to.methods.join(',') || nonDefaultMethods(c.from) || nonDefaultMethods(c.to);
      return [{ sign: '~', label: 'route', subject: c.name, text: `${chain(c.from, methods)}${NEW}${chain(c.to, methods)}` }];
    }
    case 'route-removed':
      return [{ sign: '-', label: 'route', subject: c.name, text: chain(c, nonDefaultMethods(c)) }];
    case 'function-removed':
      return [{ sign: '-', label: 'fn', subject: c.name, text: `${plural(c.instances, 'instance')}, stopped once no route uses it` }];
    case 'xdp-added':
      return [{ sign: '+', label: 'xdp', subject: c.name, text: `${c.mode}, default ${c.default}, ${plural(c.rules, 'rule')}, ${plural(c.sets, 'set')}` }];
    case 'xdp-changed':
      return xdpRows(c);
    case 'xdp-removed':
      return [{ sign: '-', label: 'xdp', subject: c.name, text: `detached (${plural(c.rules, 'rule')}): frames reach the stack unclassified` }];
    case 'tc-added':
      return [{ sign: '+', label: 'tc', subject: c.name, text: `tcx, default ${c.default}, ${plural(c.rules, 'rule')}, ${plural(c.sets, 'set')}` }];
    case 'tc-changed':
      return xdpRows(c);
    case 'tc-removed':
      return [{ sign: '-', label: 'tc', subject: c.name, text: `detached (${plural(c.rules, 'rule')}): frames pass unclassified` }];
    case 'packet-function-scaled':
      return [{ sign: '~', label: 'packet', subject: c.name, text: `instances ${arrow(c)}` }];
    case 'packet-changed':
      return [{ sign: '!', label: 'packet', subject: c.name, text: `${c.what} (needs --restart)` }];
  }
}

function clip(line: string): string {
  return line.length <= MAX_LINE ? line : `${line.slice(0, MAX_LINE - 3)}...`;
}

function header(d: PolicyDiff): string[] {
  const n = d.changes.length;
  if (n === 0) return [`policy ${d.policy}: no changes`];
  const head = `policy ${d.policy}: ${plural(n, 'change')}`;
  if (d.live) return [`${head}, all live`];
  const k = d.changes.filter((c) => c.action === 'restart').length;
  const needs = `${head}, ${k} ${k === 1 ? 'needs' : 'need'} --restart`;
  const inline = `${needs}: ${d.restartReasons.join('; ')}`;
  if (inline.length <= MAX_LINE) return [inline];
  return [`${needs}:`, ...d.restartReasons.map((r) => clip(`  ${r}`))];
}

/**
 * A row's text on as many lines as it needs: whole segments (between break points) packed onto
 * each line, continuation lines indented to the text column, `=>` hanging to its left.
 */
function wrap(lead: string, text: string): string[] {
  const one = lead + text.replaceAll(BRK, '');
  if (one.length <= MAX_LINE) return [one];
  const indent = ' '.repeat(lead.length);
  const lines: string[] = [];
  let line = lead;
  let fresh = true;
  for (const seg of text.split(BRK)) {
    const isNew = seg.startsWith('  =>  ');
    if (!fresh && (isNew || line.length + seg.length > MAX_LINE)) {
      lines.push(line.trimEnd());
      line = isNew ? indent.slice(4) : indent;
      fresh = true;
    }
    line += fresh ? seg.trimStart() : seg;
    fresh = false;
  }
  lines.push(line.trimEnd());
  return lines.map(clip);
}

/** The diff as text for people (no trailing newline). */
export function renderDiff(d: PolicyDiff): string {
  const rows = d.changes.flatMap(rowsOf);
  const labelW = Math.max(0, ...rows.map((r) => r.label.length));
  const subjectW = Math.min(MAX_SUBJECT, Math.max(0, ...rows.map((r) => r.subject.length)));
  const lines = header(d);
  for (const r of rows) lines.push(...wrap(`${r.sign} ${r.label.padEnd(labelW)} ${r.subject.padEnd(subjectW)}  `, r.text));
  return lines.join('\n');
}
