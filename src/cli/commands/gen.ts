/**
 * `bpfctl gen types X.bpf.o [-o FILE]`: a TypeScript skeleton of an object, like bpf2go or
 * `bpftool gen skeleton`. Every map, program and global variable gets a typed name; keys, values
 * and globals get codecs built from the object's BTF (the same layouts `codecFromBtf` reads, with
 * every offset written out), so user code reads `skel.maps.stats.get(2)` as a typed struct, and a
 * skeleton that no longer matches the object fails when TypedMap checks it against the map's BTF.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Argv } from 'yargs';
import { BpfObject, type BtfType, type MapSpec } from '../../../loader/index.ts';
import { asKnown, type Codec, codecFromBtf } from '../../schema/index.ts';
import { type Command, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

/** Array-like map kinds: keys are u32 indexes even without key BTF. */
const INDEXED = new Set(['array', 'percpu_array', 'prog_array', 'sockmap', 'xskmap', 'devmap', 'cpumap', 'array_of_maps', 'perf_event_array', 'cgroup_array']);
const RAW = new Set(['ringbuf', 'user_ringbuf', 'perf_event_array', 'prog_array', 'sockmap', 'sockhash', 'xskmap', 'devmap', 'devmap_hash', 'cpumap', 'array_of_maps', 'hash_of_maps']);

const ident = (s: string) => {
  const t = s.replace(/[^A-Za-z0-9_]/g, '_').replace(/^_+/, '');
  return /^[0-9]/.test(t) || !t ? `_${t}` : t;
};
const pascal = (s: string) =>
  ident(s)
    .split('_')
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join('') || 'Anon';

/** Turns codecs into TypeScript source: one interface and one codec constant per struct. */
class Emitter {
  readonly decls: string[] = [];
  readonly imports = new Set<string>(['structWithLayout']);
  private readonly structs = new Map<Codec<unknown>, { type: string; codec: string }>();
  private readonly names = new Set<string>();

  private unique(base: string): string {
    let n = base;
    for (let i = 2; this.names.has(n); i++) n = `${base}${i}`;
    this.names.add(n);
    return n;
  }

  /** [TypeScript type, codec expression] for a codec. */
  emit(codec: Codec<unknown>, hint: string): [string, string] {
    const c = asKnown(codec);
    switch (c.kind) {
      case 'bytes':
        this.imports.add('bytes');
        return ['Uint8Array', `bytes(${c.size})`];
      case 'cstring':
        this.imports.add('cstring');
        return ['string', `cstring(${c.size})`];
      case 'array': {
        this.imports.add('array');
        const [t, e] = this.emit(c.elem, hint);
        return [`${t}[]`, `array(${e}, ${c.len})`];
      }
      case 'struct': {
        const known = this.structs.get(codec);
        if (known) return [known.type, known.codec];
        const type = this.unique(pascal(c.name.startsWith('anon_') || c.name.startsWith('.') ? hint : c.name));
        const constName = `${type[0]!.toLowerCase()}${type.slice(1)}Codec`;
        const fields = c.fields.map((f) => {
          const [t, e] = this.emit(f.codec, `${type}_${f.name}`);
          return { name: f.name, t, e, offset: f.offset };
        });
        this.decls.push(
          `/** \`${c.name}\` (${c.size} bytes). */\nexport interface ${type} {\n${fields.map((f) => `  ${JSON.stringify(f.name)}: ${f.t};`).join('\n')}\n}\n` +
            `export const ${constName} = structWithLayout(${JSON.stringify(c.name)}, [\n${fields.map((f) => `  { name: ${JSON.stringify(f.name)}, codec: ${f.e}, offset: ${f.offset} },`).join('\n')}\n], ${c.size}, ${c.align}, ${c.packed}) as unknown as Codec<${type}>;\n`,
        );
        this.structs.set(codec, { type, codec: constName });
        return [type, constName];
      }
      default:
        this.imports.add(c.kind);
        return [c.size === 8 ? 'bigint' : 'number', c.kind];
    }
  }
}

function codecOf(t: BtfType | undefined, size: number): Codec<unknown> | undefined {
  return t && t.size === size && size > 0 ? codecFromBtf(t) : undefined;
}

/** The skeleton module's source for the object at `file`, importing bpfctl from `from` (a path prefix). */
export function generateTypes(file: string, from: string): string {
  const obj = BpfObject.open(file);
  try {
    const e = new Emitter();
    const cls = pascal(obj.name);
    const mapRows: { prop: string; name: string; type: string; init: string; spec: MapSpec }[] = [];
    const used = new Set<string>();
    for (const m of obj.maps) {
      let prop = ident(m.section ? m.section.slice(1) : m.name);
      while (used.has(prop)) prop = `${prop}_`;
      used.add(prop);
      const v = RAW.has(m.type) ? undefined : codecOf(m.btf?.value, m.valueSize);
      const k = codecOf(m.btf?.key, m.keySize) ?? (INDEXED.has(m.type) && m.keySize === 4 ? codecFromBtf({ kind: 'int', name: 'u32', size: 4, signed: false }) : undefined);
      if (!v || !k) {
        mapRows.push({ prop, name: m.name, type: 'BpfMap', init: `o.map(${JSON.stringify(m.name)})`, spec: m });
        continue;
      }
      const [kt, ke] = e.emit(k, `${pascal(prop)}Key`);
      const [vt, ve] = e.emit(v, `${pascal(prop)}Value`);
      mapRows.push({ prop, name: m.name, type: `TypedMap<${kt}, ${vt}>`, init: `new TypedMap(o.map(${JSON.stringify(m.name)}), ${ke}, ${ve})`, spec: m });
    }
    const globals = obj.globals.map((g) => {
      const [t, c] = e.emit(codecFromBtf(g.type), pascal(g.name));
      return { g, t, c };
    });
    const progs = obj.programs.map((p) => ({ prop: ident(p.name), p }));
    // A package specifier ('bpfctl') imports its loader entry; a path names a bpfctl checkout.
    const api = JSON.stringify(/^[./]/.test(from) ? `${from}/src/maps/index.ts` : `${from}/loader`);
    const schemaImports = [...e.imports].sort();
    const lines = [
      '/**',
      ` * Typed skeleton of ${file.split('/').pop()}, generated by \`bpfctl gen types\` from its BTF. Do not edit:`,
      ' * regenerate it when the object changes (TypedMap checks these codecs against the loaded maps).',
      ' *',
      ...obj.maps.map((m) => ` *   map ${m.name}: ${m.type}, key ${m.keySize} B, value ${m.valueSize} B, max ${m.maxEntries}${m.pinPath ? ', pinned by name' : ''}`),
      ...obj.programs.map((p) => ` *   program ${p.name}: ${p.type} (section ${p.section})`),
      ' */',
      `import { BpfObject, type BpfMap, type BpfProgram, type Codec, decode, encode, LoaderError, type OpenOptions, TypedMap, ${schemaImports.join(', ')} } from ${api};`,
      '',
      `/** The object this skeleton was generated from. */`,
      `export const OBJECT_PATH = ${JSON.stringify(resolve(file))};`,
      '',
      ...e.decls,
      `export interface ${cls}Maps {`,
      ...mapRows.map((r) => `  /** ${r.name} (${r.spec.type}) */\n  ${r.prop}: ${r.type};`),
      '}',
      '',
      `export interface ${cls}Programs {`,
      ...progs.map((p) => `  /** section ${p.p.section} */\n  ${p.prop}: BpfProgram;`),
      '}',
      '',
      `export interface ${cls}Globals {`,
      ...globals.map((x) => `  /** ${x.g.section}${x.g.readonly ? ' (const volatile: set before load)' : ''} */\n  ${x.g.name}: ${x.t};`),
      '}',
      '',
      `const globalCodecs: { [K in keyof ${cls}Globals]: Codec<${cls}Globals[K]> } = {`,
      ...globals.map((x) => `  ${x.g.name}: ${x.c},`),
      '};',
      '',
      `/** ${obj.name}: open() gives the spec (set globals), load() creates it; then maps, progs and globals by name. */`,
      `export class ${cls} {`,
      '  readonly object: BpfObject;',
      `  private live: { maps: ${cls}Maps; progs: ${cls}Programs } | undefined;`,
      '',
      '  private constructor(object: BpfObject) {',
      '    this.object = object;',
      '  }',
      '',
      '  /** LoaderError E_NOENT / E_ELF as BpfObject.open. */',
      `  static open(path: string = OBJECT_PATH, opts: OpenOptions = {}): ${cls} {`,
      `    return new ${cls}(BpfObject.open(path, opts));`,
      '  }',
      '',
      '  /** Before load: the initial value (const volatile configuration); after: the live value. */',
      `  setGlobal<K extends keyof ${cls}Globals>(name: K, value: ${cls}Globals[K]): void {`,
      '    this.object.setGlobal(name, encode(globalCodecs[name], value));',
      '  }',
      '',
      `  global<K extends keyof ${cls}Globals>(name: K): ${cls}Globals[K] {`,
      '    return decode(globalCodecs[name], this.object.globalBytes(name));',
      '  }',
      '',
      '  /** VerifierError / LoaderError as BpfObject.load; SchemaError if the object no longer matches this skeleton. */',
      '  load(): this {',
      '    this.object.load();',
      '    const o = this.object;',
      '    this.live = {',
      `      maps: {\n${mapRows.map((r) => `        ${r.prop}: ${r.init},`).join('\n')}\n      },`,
      `      progs: {\n${progs.map((p) => `        ${p.prop}: o.program(${JSON.stringify(p.p.name)}),`).join('\n')}\n      },`,
      '    };',
      '    return this;',
      '  }',
      '',
      `  get maps(): ${cls}Maps {`,
      '    return this.loaded().maps;',
      '  }',
      '',
      `  get progs(): ${cls}Programs {`,
      '    return this.loaded().progs;',
      '  }',
      '',
      '  private loaded() {',
      `    if (!this.live) throw new LoaderError('E_STATE', 22, \`${obj.name}: call load() before using maps and programs\`);`,
      '    return this.live;',
      '  }',
      '',
      '  /** Idempotent: closes every fd the object holds (pins and attachments stay). */',
      '  close(): void {',
      '    this.object.close();',
      '  }',
      '}',
      '',
    ];
    return lines.join('\n');
  } finally {
    obj.close();
  }
}

interface GenArgs {
  object: string;
  output?: string;
  importFrom?: string;
}

const types = defineCommand<GenArgs>({
  command: 'types <object>',
  describe: 'Write a TypeScript skeleton of FILE.bpf.o: typed maps, programs and globals from its BTF',
  builder: (y: Argv) =>
    y
      .positional('object', { type: 'string', demandOption: true, describe: 'FILE.bpf.o' })
      .option('output', { alias: 'o', type: 'string', describe: 'write the module here (default: stdout)' })
      .option('import-from', { type: 'string', default: 'bpfctl', describe: "package bpfctl is imported from ('bpfctl': its bpfctl/loader entry), or the path of a bpfctl checkout" }),
  handler: (argv) => {
    const out = argv.output ? resolve(argv.output) : undefined;
    const source = generateTypes(argv.object, argv.importFrom ?? 'bpfctl');
    if (!out) return void argv.out.stdout.write(source);
    writeFileSync(out, source);
    if (argv.out.json) argv.out.printJson({ object: resolve(argv.object), output: out });
    else argv.out.line(`wrote ${out}`);
  },
});

export const genCommand: Command = {
  ...usage('gen'),
  builder: (y: Argv) => y.command(types).demandCommand(1),
  handler: () => {},
};
