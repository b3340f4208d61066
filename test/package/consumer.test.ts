/**
 * bpfctl as a user gets it: `npm pack`, installed into a fresh project whose tsconfig is as
 * strict as projects get (NodeNext, strict, exactOptionalPropertyTypes,
 * noPropertyAccessFromIndexSignature, no skipLibCheck), a policy and a function type-checked
 * against the package's declarations, and the installed `bpfctl` building the policy. Needs no
 * root; needs the npm registry or npm's cache for the package's dependencies.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
const work = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-consumer-`));
const project = join(work, 'project');
const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
let tarball = '';
let files: string[] = [];

const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_loglevel: 'error' } });

test.before(() => {
  // prepack builds dist/ first, so the tarball holds what the sources say now.
  const out = npm(['pack', '--json', '--pack-destination', work], REPO);
  const info = (JSON.parse(out) as { filename: string; files: { path: string }[] }[])[0]!;
  tarball = join(work, info.filename);
  files = info.files.map((f) => f.path);
  mkdirSync(join(project, 'functions'), { recursive: true });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          exactOptionalPropertyTypes: true,
          noPropertyAccessFromIndexSignature: true,
          noUncheckedIndexedAccess: true,
          skipLibCheck: false,
          noEmit: true,
          allowImportingTsExtensions: true,
          types: ['node'],
        },
        include: ['*.ts', 'functions'],
      },
      null,
      2,
    ),
  );
  writeFileSync(
    join(project, 'policy.ts'),
    `import { definePolicy } from 'bpfctl';

export default definePolicy({
  name: 'consumer-chain',
  functions: {
    greet: { instances: 2, handler: './functions/greet.ts' },
  },
  routes: { hello: ['greet'] },
});
`,
  );
  writeFileSync(
    join(project, 'functions/greet.ts'),
    `import { FunctionError, type Handler } from 'bpfctl/runtime';

const greet: Handler = async (req) => {
  if (req.body.length === 0) throw new FunctionError(400, 'empty body');
  return \`hello \${req.body.toString()}\`;
};
export default greet;
`,
  );
  writeFileSync(
    join(project, 'functions/ttl.ts'),
    `import { csumReplace16, DROP, ETH_P_IP, type PacketHandler } from 'bpfctl/packet';

const ttl: PacketHandler = (packets) => {
  for (const p of packets) {
    if (p.etherType !== ETH_P_IP) continue;
    const f = p.data;
    const at = p.l3 + 8;
    if (f[at]! <= 1) {
      p.verdict = DROP;
      continue;
    }
    const old = (f[at]! << 8) | f[at + 1]!;
    f[at]! -= 1;
    csumReplace16(f, p.l3 + 10, old, old - 0x100);
  }
};
export default ttl;
`,
  );
  writeFileSync(
    join(project, 'maps.ts'),
    `import { BpfObject, TypedMap, u32, u64 } from 'bpfctl/loader';

export function counters(path: string): TypedMap<number, bigint> {
  const obj = BpfObject.open(path);
  return new TypedMap(obj.map('counters'), u32, u64);
}
`,
  );
  // @types/node is the user's own dev dependency, as in any TypeScript project on Node.
  npm(['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, '@types/node@20'], project);
});

test.after(() => rmSync(work, { recursive: true, force: true }));

test('the tarball ships the compiled package and its C, not tests, benchmarks or CI', () => {
  for (const f of ['dist/src/cli/main.js', 'dist/src/dsl/index.js', 'dist/src/dsl/index.d.ts', 'dist/src/runtime/index.d.ts', 'dist/src/maps/index.d.ts', 'dist/src/runtime/pool/index.d.ts', 'dist/src/runtime/packet-ts/index.d.ts', 'dist/src/runtime/packet-ts/main.js', 'src/runtime/packet-ts/shim.c', 'bin/bpfctl.js', 'bpf/chain/chain.bpf.c', 'src/runtime/c/fn.c']) {
    assert.ok(files.includes(f), `${f} is in the tarball`);
  }
  const bad = files.filter((f) => /^(test|bench|\.ci|scripts)\//.test(f) || f === 'biome.json' || (f.startsWith('src/') && f.endsWith('.ts')));
  assert.equal(bad, [], 'no tests, benchmarks, CI, scripts or TypeScript sources');
  const deps = readdirSync(join(project, 'node_modules'));
  assert.not.ok(deps.includes('tsx'), 'tsx is not installed with bpfctl');
});

test('a policy, a function, a packet function and loader code type-check against the package under the strictest options', () => {
  const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8' });
  assert.is(r.status, 0, `tsc in the consumer project:\n${r.stdout}${r.stderr}`);
  // And it does check: a wrong option is an error in the user's file.
  writeFileSync(join(project, 'wrong.ts'), "import { definePolicy } from 'bpfctl';\nexport default definePolicy({ name: 'x', functions: { a: { instances: 'two', handler: './a.ts' } }, routes: {} });\n");
  const bad = spawnSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8' });
  rmSync(join(project, 'wrong.ts'));
  assert.is.not(bad.status, 0);
  assert.match(bad.stdout, /wrong\.ts\(2,\d+\): error TS2322/);
  assert.not.match(bad.stdout, /node_modules\/bpfctl/, 'no error inside the package');
});

test('the installed bpfctl builds the policy with no TypeScript tooling of its own', () => {
  const bin = join(project, 'node_modules/.bin/bpfctl');
  const env = { ...process.env, BPFCTL_CACHE: join(work, 'cache') };
  assert.is(execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim(), `bpfctl ${version}`);
  const r = spawnSync(bin, ['build', 'policy.ts', '-o', 'out', '--json'], { cwd: project, encoding: 'utf8', env });
  assert.is(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { policy: string; files: { kind: string; file: string }[] };
  assert.is(res.policy, 'consumer-chain');
  assert.ok(existsSync(join(project, 'out/chain.bpf.o')));
  assert.ok(res.files.some((f) => f.kind === 'handler' && f.file.endsWith('functions/greet.ts')));
  // The cache is where the user said, not inside the installed package.
  assert.ok(existsSync(join(work, 'cache/bpf')));
  assert.not.ok(existsSync(join(project, 'node_modules/bpfctl/.cache')));
});

test('a policy syntax error shows file:line:col and the line, with exit code 1', () => {
  const bin = join(project, 'node_modules/.bin/bpfctl');
  writeFileSync(join(project, 'broken.ts'), "import { definePolicy } from 'bpfctl';\nexport default definePolicy({\n  name: 'x' 'y',\n});\n");
  const r = spawnSync(bin, ['build', 'broken.ts'], { cwd: project, encoding: 'utf8', env: { ...process.env, BPFCTL_CACHE: join(work, 'cache') } });
  rmSync(join(project, 'broken.ts'));
  assert.is(r.status, 1);
  const lines = r.stderr.trimEnd().split('\n');
  assert.match(lines[0]!, /^bpfctl: .*broken\.ts:3:13: Expected "}" but found "'y'"$/);
  assert.is(lines[1], "3 |   name: 'x' 'y',");
  assert.is(lines[2], `${' '.repeat(16)}^`);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
});

test.run();
