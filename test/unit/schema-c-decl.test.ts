import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  array,
  be16,
  bytes,
  type Codec,
  cDeclarator,
  configValue,
  countersValue,
  cStruct,
  cstring,
  descriptor,
  i64,
  instancesValue,
  routeValue,
  type StructCodec,
  SchemaError,
  struct,
  structWithLayout,
  u8,
  u16,
  u32,
  u64,
} from '../../src/schema/index.ts';

test('the descriptor declaration', () => {
  assert.fixture(
    cStruct(descriptor),
    `struct bpfctl_desc {
\t__u16 route;
\t__u8 hop;
\t__u8 flags;
\t__u16 gw_inst;
\t__u16 status;
\t__u32 req_id;
\t__u32 buf_off;
\t__u32 buf_len;
\t__u32 buf_gen;
};
_Static_assert(sizeof(struct bpfctl_desc) == 24, "struct bpfctl_desc differs from its bpfctl schema");`,
  );
});

test('chain map values', () => {
  assert.fixture(
    cStruct(routeValue, { staticAssert: false }),
    'struct bpfctl_route {\n\t__u32 len;\n\t__u16 fn[16];\n\t__u32 version;\n\t__u32 retired;\n\t/* 4 bytes of padding */\n\t__u64 retired_at_ms;\n\t__u32 methods;\n\t__u32 name_len;\n\t__u8 name[64];\n};',
  );
  assert.is(routeValue.size, 128);
  assert.fixture(
    cStruct(configValue, { staticAssert: false }),
    'struct bpfctl_config {\n\t__u32 pool_size;\n\t__u32 data_off;\n\t__u32 buf_size;\n\t__u32 buf_count;\n\t__u32 hub_port;\n\t__u32 routes_gen;\n};',
  );
  assert.fixture(cStruct(instancesValue, { staticAssert: false }), 'struct bpfctl_instances {\n\t__u32 count;\n\t__u16 inst[32];\n};');
  assert.fixture(
    cStruct(countersValue, { staticAssert: false }),
    'struct bpfctl_counters {\n\t__u64 msgs;\n\t__u64 bytes;\n\t__u64 drops;\n};',
  );
  assert.is(configValue.size, 24);
});

test('declarators', () => {
  assert.is(cDeclarator(u32, 'x'), '__u32 x');
  assert.is(cDeclarator(i64, 'x'), '__s64 x');
  assert.is(cDeclarator(be16, 'port'), '__be16 port');
  assert.is(cDeclarator(bytes(6), 'mac'), '__u8 mac[6]');
  assert.is(cDeclarator(cstring(16), 'comm'), 'char comm[16]');
  assert.is(cDeclarator(array(array(u32, 3), 2), 'm'), '__u32 m[2][3]');
  assert.is(cDeclarator(routeValue, 'r'), 'struct bpfctl_route r');
  assert.is(array(u16, 4).cType(), '__u16[4]');
});

const inner = struct('inner', { x: u64, port: be16 });
const outer = struct('outer', { a: u8, in1: inner, list: array(inner, 2), name: cstring(5), tail: u8 });

test('nested structs come first, once, with padding noted', () => {
  assert.fixture(
    cStruct(outer, { staticAssert: false }),
    `struct inner {
\t__u64 x;
\t__be16 port;
};

struct outer {
\t__u8 a;
\t/* 7 bytes of padding */
\tstruct inner in1;
\tstruct inner list[2];
\tchar name[5];
\t__u8 tail;
};`,
  );
});

test('packed and aligned attributes', () => {
  assert.fixture(
    cStruct(struct('pk', { a: u8, b: u32 }, { packed: true }), { staticAssert: false }),
    'struct pk {\n\t__u8 a;\n\t__u32 b;\n} __attribute__((packed));',
  );
  assert.fixture(cStruct(struct('al', { a: u8 }, { align: 8 }), { staticAssert: false }), 'struct al {\n\t__u8 a;\n} __attribute__((aligned(8)));');
});

test('layouts from BTF that natural alignment cannot make get explicit padding', () => {
  const gap = structWithLayout('gap', [{ name: 'a', codec: u32, offset: 0 }, { name: 'b', codec: u32, offset: 8 }], 16, 4, false);
  assert.fixture(cStruct(gap, { staticAssert: false }), 'struct gap {\n\t__u32 a;\n\t__u8 __pad0[4];\n\t__u32 b;\n\t__u8 __pad1[4];\n};');
  const odd = structWithLayout('odd', [{ name: 'a', codec: u8, offset: 0 }, { name: 'b', codec: u32, offset: 1 }], 5, 1, true);
  assert.fixture(cStruct(odd, { staticAssert: false }), 'struct odd {\n\t__u8 a;\n\t__u32 b;\n} __attribute__((packed));');
});

test('cStruct refuses non-structs and clashing names', () => {
  assert.throws(() => cStruct(u32), (e: unknown) => e instanceof SchemaError);
  const a = struct('dup', { x: u8 });
  const b = struct('dup', { y: u32 });
  assert.throws(() => cStruct(struct('both', { a, b })), /two different structs are both named dup/);
});

// clang is the judge: every offset and size the schema computes must be what C computes.
function clangAgrees(codecs: StructCodec<unknown>[]): void {
  const checks: string[] = [];
  const visit = (s: StructCodec<unknown>) => {
    checks.push(`_Static_assert(_Alignof(struct ${s.name}) == ${s.align}, "align ${s.name}");`);
    for (const f of s.fields) {
      checks.push(`_Static_assert(__builtin_offsetof(struct ${s.name}, ${f.name}) == ${f.offset}, "${s.name}.${f.name}");`);
      let c: Codec<unknown> = f.codec;
      while (c.kind === 'array') c = (c as unknown as { elem: Codec<unknown> }).elem;
      if (c.kind === 'struct') visit(c as StructCodec<unknown>);
    }
  };
  const decls = new Set<string>();
  for (const s of codecs) {
    decls.add(cStruct(s));
    visit(s);
  }
  const src = `#include <linux/types.h>\n${[...decls].join('\n\n')}\n${checks.join('\n')}\n`;
  try {
    execFileSync('clang', ['-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-fsyntax-only', '-x', 'c', '-'], { input: src, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    assert.unreachable(`clang disagrees:\n${(err as { stderr?: Buffer }).stderr?.toString()}\n${src}`);
  }
}

test('clang lays out every schema exactly as the codec does', () => {
  const gap = structWithLayout('gap2', [{ name: 'a', codec: u32, offset: 0 }, { name: 'b', codec: u32, offset: 8 }], 16, 4, false);
  const odd = structWithLayout('odd2', [{ name: 'a', codec: u8, offset: 0 }, { name: 'b', codec: u32, offset: 1 }, { name: 'c', codec: u8, offset: 5 }], 8, 1, true);
  clangAgrees([
    descriptor,
    routeValue,
    instancesValue,
    configValue,
    countersValue,
    outer,
    struct('pk2', { a: u8, b: u32, c: u16 }, { packed: true }),
    struct('al2', { a: u8, b: u16 }, { align: 16 }),
    gap,
    odd,
  ] as StructCodec<unknown>[]);
});

test.run();
