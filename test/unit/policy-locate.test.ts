/** locate(): from a validation path to the line and column of its value in a policy file. */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatPath } from '../../src/ir/issues.ts';
import { locate, parsePath } from '../../src/load/locate.ts';

const at = (src: string, path: string) => {
  const p = locate(src, parsePath(path));
  return p ? `${p.line}:${p.column}${p.exact ? '' : '~'}` : null;
};

test('paths as PolicyError formats them', () => {
  assert.equal(parsePath("routes['/hello'][1]"), ['routes', '/hello', 1]);
  assert.equal(parsePath('functions.a.instances'), ['functions', 'a', 'instances']);
  assert.equal(parsePath('xdp[0].rules[2].match.port'), ['xdp', 0, 'rules', 2, 'match', 'port']);
  for (const segs of [['routes', "it's"], ['r', 'a"b', 0], ['x', "']", 'y'], ['k', '\\n']] as (string | number)[][]) assert.equal(parsePath(formatPath(segs)), segs);
});

const POLICY = `import { definePolicy } from 'bpfctl';
// a comment with { braces: 1 } and 'quotes'
const re = /[{}]/g;
export default definePolicy({
  name: 'p', /* name: 'not this' */
  functions: {
    a: { instances: 'two', handler: './a.ts' },
    'b-c': { instances: 1, handler: "./{b}.ts" },
  },
  routes: { '/r': ['a', 'zzz'], other: { functions: ['a'], methods: ['GET'] } },
  xdp: [{ interface: 'eth0', rules: [{ action: 'drop', match: { proto: 'tcp', port: 99999 } }] }],
});
`;

test('keys, quoted keys, array elements, nested literals', () => {
  assert.is(at(POLICY, 'name'), '5:9');
  assert.is(at(POLICY, 'functions.a.instances'), '7:21');
  assert.is(at(POLICY, "functions['b-c'].handler"), '8:37');
  assert.is(at(POLICY, "routes['/r'][1]"), '10:25');
  assert.is(at(POLICY, 'routes.other.methods[0]'), '10:70');
  assert.is(at(POLICY, 'xdp[0].rules[0].match.port'), '11:85');
});

test('a path whose leaf is not written in the file points at its nearest ancestor, marked inexact', () => {
  assert.is(at(POLICY, 'functions.a.maxInFlight'), '7:8~');
  assert.is(at(POLICY, 'pool.bufferSize'), null);
});

test('shorthand keys and policies built by code', () => {
  const src = "const functions = { a: { instances: 1 } };\nexport default { name: 'x', functions, routes: { r: ['a'] } };\n";
  assert.is(at(src, 'routes.r[0]'), '2:54');
  // `functions` is a shorthand: the literal it names is elsewhere, so the key is shown, inexact.
  assert.is(at(src, 'functions.a.instances'), '2:29~');
});

/** A policy-like value printed as TypeScript, with the offset of every value's text. */
type Val = string | number | boolean | Val[] | { [k: string]: Val };
function print(v: Val, indent: string, offsets: Map<string, number>, path: (string | number)[], out: { s: string }): void {
  if (path.length) offsets.set(formatPath(path), out.s.length);
  if (Array.isArray(v)) {
    out.s += '[';
    v.forEach((x, i) => {
      if (i) out.s += ', ';
      print(x, indent, offsets, [...path, i], out);
    });
    out.s += ']';
  } else if (v && typeof v === 'object') {
    out.s += '{\n';
    for (const [k, x] of Object.entries(v)) {
      const ident = /^[A-Za-z_$][\w$]*$/.test(k);
      out.s += `${indent}  ${ident ? k : JSON.stringify(k)}: `;
      print(x, `${indent}  `, offsets, [...path, k], out);
      out.s += ', // c\n';
    }
    out.s += `${indent}}`;
  } else out.s += typeof v === 'string' ? JSON.stringify(v) : String(v);
}

test('property: every value of a printed literal is found where it was printed', () => {
  const key = fc.oneof(fc.constantFrom('name', 'functions', 'routes', 'a', 'b', '/hello', 'x-y', "it's", '{', 'n1'), fc.string({ minLength: 1, maxLength: 6 }));
  const leaf = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean());
  const tree = fc.letrec<{ v: Val }>((tie) => ({
    v: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(key, tie('v'), { maxKeys: 4 })),
  }));
  fc.assert(
    fc.property(fc.dictionary(key, tree.v, { minKeys: 1, maxKeys: 4 }), (root) => {
      const offsets = new Map<string, number>();
      const out = { s: 'export default ' };
      print(root, '', offsets, [], out);
      const src = `${out.s};\n`;
      for (const [path, off] of offsets) {
        const p = locate(src, parsePath(path));
        const before = src.slice(0, off);
        const want = `${before.split('\n').length}:${off - (before.lastIndexOf('\n') + 1) + 1}`;
        if (!p || `${p.line}:${p.column}` !== want || !p.exact) throw new Error(`${path}: want ${want}, got ${p ? `${p.line}:${p.column}` : 'nothing'}\n${src}`);
      }
    }),
    { numRuns: 300 },
  );
});

test.run();
