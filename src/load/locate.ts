/**
 * Where in a policy file a validation path points: `functions.a.instances` -> line 5, column 18,
 * so a policy error can show the line like a compiler does. A small scanner over the source text,
 * not a TypeScript parser: it follows object and array literals (keys, shorthand keys, elements),
 * skipping strings, template literals, comments and regular expressions in the obvious places.
 * A policy built by code (spreads, helper calls, variables) may have no literal for a path: then
 * the deepest literal ancestor is returned, marked inexact, or nothing.
 */

export interface SourcePoint {
  line: number;
  column: number;
  lineText: string;
  /** False when only an ancestor of the path was found in the source. */
  exact: boolean;
}

interface Node {
  kind: 'object' | 'array';
  /** Offset of the opening brace/bracket. */
  start: number;
  /** Object: key -> offset of its value (of the key, for a shorthand) and the literal it holds, if any. */
  keys: Map<string, { at: number; child: Node | null }>;
  /** Array: offset of each element and the literal it is, if any. */
  items: { at: number; child: Node | null }[];
}

/**
 * The inverse of the IR's formatPath: `routes['/hello'][1]` / `functions.a.instances` ->
 * ['routes', '/hello', 1] / ['functions', 'a', 'instances']. A quoted segment is JSON with its
 * outer quotes made single; [] for a string that is not such a path.
 */
export function parsePath(path: string): (string | number)[] {
  return parseFrom(path, 0) ?? [];
}

/** formatPath does not escape `']` inside a quoted key, so a quoted segment may end at any `']`. */
function parseFrom(path: string, i: number): (string | number)[] | null {
  if (i === path.length) return [];
  const word = /\.?([A-Za-z_$][\w$]*)/y;
  const index = /\[(\d+)\]/y;
  word.lastIndex = i;
  index.lastIndex = i;
  let m = word.exec(path);
  if (m && (i > 0 || !path.startsWith('.'))) {
    const rest = parseFrom(path, word.lastIndex);
    return rest && [m[1]!, ...rest];
  }
  m = index.exec(path);
  if (m) {
    const rest = parseFrom(path, index.lastIndex);
    return rest && [Number(m[1]), ...rest];
  }
  if (!path.startsWith("['", i)) return null;
  for (let end = path.indexOf("']", i + 2); end >= 0; end = path.indexOf("']", end + 1)) {
    let key: string;
    try {
      key = JSON.parse(`"${path.slice(i + 2, end)}"`) as string;
    } catch {
      continue;
    }
    const rest = parseFrom(path, end + 2);
    if (rest) return [key, ...rest];
  }
  return null;
}

/** Every top-level object/array literal in the source, with its keys and elements. */
function scan(src: string): Node[] {
  const roots: Node[] = [];
  const stack: Node[] = [];
  /** Where the next array element or object value starts being awaited. */
  let expectItem = false;
  let pendingKey: { name: string; at: number } | null = null;
  let lastSignificant = '';
  const attach = (node: Node) => {
    const top = stack.at(-1);
    if (!top) roots.push(node);
    else if (top.kind === 'object' && pendingKey) {
      const k = top.keys.get(pendingKey.name);
      if (k) k.child = node;
    } else if (top.kind === 'array' && expectItem) top.items.push({ at: node.start, child: node });
    else if (top.kind === 'array') {
      const last = top.items.at(-1);
      if (last && !last.child) last.child = node;
    }
  };
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    // Comments, strings and template literals carry no structure.
    if (c === '/' && src[i + 1] === '/') {
      i = src.indexOf('\n', i);
      if (i < 0) break;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      i = src.indexOf('*/', i + 2) + 1;
      if (i <= 0) break;
      continue;
    }
    if (/\s/.test(c)) continue;
    const top = stack.at(-1);
    if (c === '"' || c === "'" || c === '`') {
      const start = i;
      i = skipString(src, i);
      const text = src.slice(start, i + 1);
      if (top?.kind === 'object' && isKeyPosition(lastSignificant) && nextSignificant(src, i + 1) === ':') {
        pendingKey = { name: unquote(text), at: start };
        top.keys.set(pendingKey.name, { at: valueStart(src, i + 1), child: null });
      } else if (top?.kind === 'array' && expectItem) top.items.push({ at: start, child: null });
      expectItem = false;
      lastSignificant = 'v';
      continue;
    }
    if (c === '/' && /[(,=:[!&|?{};]|^$/.test(lastSignificant)) {
      // A regular expression literal: skip to its closing slash.
      let j = i + 1;
      let inClass = false;
      for (; j < src.length && src[j] !== '\n'; j++) {
        if (src[j] === '\\') j++;
        else if (src[j] === '[') inClass = true;
        else if (src[j] === ']') inClass = false;
        else if (src[j] === '/' && !inClass) break;
      }
      i = j;
      lastSignificant = 'v';
      expectItem = false;
      continue;
    }
    if (c === '{' || c === '[') {
      const node: Node = { kind: c === '{' ? 'object' : 'array', start: i, keys: new Map(), items: [] };
      attach(node);
      stack.push(node);
      pendingKey = null;
      expectItem = c === '[';
      lastSignificant = c;
      continue;
    }
    if (c === '}' || c === ']') {
      stack.pop();
      pendingKey = null;
      expectItem = false;
      lastSignificant = c;
      continue;
    }
    if (c === ',') {
      if (top?.kind === 'array') expectItem = true;
      if (top?.kind === 'object') pendingKey = null;
      lastSignificant = c;
      continue;
    }
    if (/[A-Za-z_$0-9]/.test(c)) {
      const start = i;
      while (i + 1 < src.length && /[\w$]/.test(src[i + 1]!)) i++;
      const word = src.slice(start, i + 1);
      if (top?.kind === 'object' && isKeyPosition(lastSignificant)) {
        const next = nextSignificant(src, i + 1);
        // `key: value`, or the shorthand `key,` / `key }`.
        if (next === ':' || next === ',' || next === '}') {
          top.keys.set(word, { at: next === ':' ? valueStart(src, i + 1) : start, child: null });
          pendingKey = next === ':' ? { name: word, at: start } : null;
        }
      } else if (top?.kind === 'array' && expectItem) top.items.push({ at: start, child: null });
      expectItem = false;
      lastSignificant = 'v';
      continue;
    }
    if (top?.kind === 'array' && expectItem && c !== '.') top.items.push({ at: i, child: null });
    expectItem = false;
    lastSignificant = c;
  }
  return roots;
}

const isKeyPosition = (last: string) => last === '{' || last === ',';

function nextSignificant(src: string, from: number): string {
  for (let i = from; i < src.length; i++) if (!/\s/.test(src[i]!)) return src[i]!;
  return '';
}

/** Offset of the value after `key` ends at `from`: past the colon and any blanks or comments. */
function valueStart(src: string, from: number): number {
  let i = src.indexOf(':', from) + 1;
  for (;;) {
    while (i < src.length && /\s/.test(src[i]!)) i++;
    if (src.startsWith('//', i)) i = src.indexOf('\n', i);
    else if (src.startsWith('/*', i)) i = src.indexOf('*/', i) + 2;
    else return i;
    if (i < 0) return src.length;
  }
}

function skipString(src: string, i: number): number {
  const q = src[i]!;
  for (let j = i + 1; j < src.length; j++) {
    if (src[j] === '\\') j++;
    else if (src[j] === q) return j;
    else if (q !== '`' && src[j] === '\n') return j - 1;
  }
  return src.length - 1;
}

function unquote(text: string): string {
  const body = text.slice(1, -1);
  return body.replace(/\\(.)/g, '$1');
}

/** Finds `path` in the policy literal of `src`; the root is the literal holding the path's first key. */
export function locate(src: string, path: readonly (string | number)[]): SourcePoint | null {
  if (!path.length) return null;
  const all: { n: Node; level: number }[] = [];
  const collect = (n: Node, level: number) => {
    all.push({ n, level });
    for (const k of n.keys.values()) if (k.child) collect(k.child, level + 1);
    for (const it of n.items) if (it.child) collect(it.child, level + 1);
  };
  for (const r of scan(src)) collect(r, 0);
  // The policy object: the literal with the first key that matches most of the path; among
  // equals the outermost (a nested object may have a key of the same name), then the last one
  // (export default comes last).
  const first = path[0]!;
  const candidates = all.filter(({ n }) => n.kind === 'object' && typeof first === 'string' && n.keys.has(first));
  let best: { at: number; depth: number; level: number } | null = null;
  for (const { n: root, level } of candidates) {
    let node: Node | null = root;
    let at = -1;
    let depth = 0;
    for (const seg of path) {
      if (!node) break;
      const hit: { at: number; child: Node | null } | undefined = node.kind === 'object' && typeof seg === 'string' ? node.keys.get(seg) : node.kind === 'array' && typeof seg === 'number' ? node.items[seg] : undefined;
      if (!hit) break;
      at = hit.at;
      node = hit.child;
      depth++;
    }
    if (at >= 0 && (!best || depth > best.depth || (depth === best.depth && level <= best.level))) best = { at, depth, level };
  }
  if (!best) return null;
  const before = src.slice(0, best.at);
  const line = before.split('\n').length;
  const lineStart = before.lastIndexOf('\n') + 1;
  const lineEnd = src.indexOf('\n', best.at);
  return { line, column: best.at - lineStart + 1, lineText: src.slice(lineStart, lineEnd < 0 ? undefined : lineEnd), exact: best.depth === path.length };
}
