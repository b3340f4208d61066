/**
 * koffi bindings to libbpf 1.1 (libbpf.so.1) and the few libc calls the loader needs. Loaded
 * lazily, once, on first use: importing the loader (e.g. for types or specs in unit tests) must
 * not require libbpf to be installed.
 *
 * Conventions: opaque libbpf objects (`struct bpf_object *`, ...) are `void *` and come back as
 * bigint (NULL is null). Buffers passed as `void *` reach C without a copy, so map keys and values
 * go straight from a Uint8Array to the syscall. libbpf 1.x returns `-errno` from the low-level
 * bpf_* calls and sets errno for the ones that return pointers.
 */
import koffi, { type LibraryHandle } from 'koffi';

// biome-ignore lint/suspicious/noExplicitAny: koffi functions are untyped at the FFI boundary
type Fn = (...args: any[]) => any;

/** A non-null pointer returned by C. Branded so a number or a Buffer cannot be passed by mistake. */
export type Ptr<Tag extends string> = bigint & { readonly __ptr: Tag };

const LIBBPF_PATHS = ['libbpf.so.1', '/usr/lib/x86_64-linux-gnu/libbpf.so.1'];

const SIGNATURES = {
  // strings and errors
  libbpf_strerror: 'int libbpf_strerror(int err, _Out_ char *buf, size_t size)',
  libbpf_bpf_attach_type_str: 'const char *libbpf_bpf_attach_type_str(int t)',
  libbpf_bpf_link_type_str: 'const char *libbpf_bpf_link_type_str(int t)',
  libbpf_bpf_map_type_str: 'const char *libbpf_bpf_map_type_str(int t)',
  libbpf_bpf_prog_type_str: 'const char *libbpf_bpf_prog_type_str(int t)',
  libbpf_num_possible_cpus: 'int libbpf_num_possible_cpus(void)',
  // bpf_object
  bpf_object__open_file: 'void *bpf_object__open_file(const char *path, void *opts)',
  bpf_object__open_mem: 'void *bpf_object__open_mem(void *buf, size_t size, void *opts)',
  bpf_object__load: 'int bpf_object__load(void *obj)',
  bpf_object__close: 'void bpf_object__close(void *obj)',
  bpf_object__next_program: 'void *bpf_object__next_program(void *obj, void *prev)',
  bpf_object__next_map: 'void *bpf_object__next_map(void *obj, void *prev)',
  // bpf_program
  bpf_program__name: 'const char *bpf_program__name(void *prog)',
  bpf_program__section_name: 'const char *bpf_program__section_name(void *prog)',
  bpf_program__type: 'int bpf_program__type(void *prog)',
  bpf_program__expected_attach_type: 'int bpf_program__expected_attach_type(void *prog)',
  bpf_program__fd: 'int bpf_program__fd(void *prog)',
  // bpf_map (object side)
  bpf_map__name: 'const char *bpf_map__name(void *map)',
  bpf_map__type: 'int bpf_map__type(void *map)',
  bpf_map__key_size: 'uint32_t bpf_map__key_size(void *map)',
  bpf_map__value_size: 'uint32_t bpf_map__value_size(void *map)',
  bpf_map__max_entries: 'uint32_t bpf_map__max_entries(void *map)',
  bpf_map__map_flags: 'uint32_t bpf_map__map_flags(void *map)',
  bpf_map__set_max_entries: 'int bpf_map__set_max_entries(void *map, uint32_t n)',
  bpf_map__reuse_fd: 'int bpf_map__reuse_fd(void *map, int fd)',
  bpf_map__fd: 'int bpf_map__fd(void *map)',
  bpf_map__pin_path: 'const char *bpf_map__pin_path(void *map)',
  bpf_map__is_pinned: 'bool bpf_map__is_pinned(void *map)',
  bpf_map__is_internal: 'bool bpf_map__is_internal(void *map)',
  bpf_map__initial_value: 'void *bpf_map__initial_value(void *map, void *psize)',
  bpf_object__btf: 'void *bpf_object__btf(void *obj)',
  bpf_map__btf_key_type_id: 'uint32_t bpf_map__btf_key_type_id(void *map)',
  bpf_map__btf_value_type_id: 'uint32_t bpf_map__btf_value_type_id(void *map)',
  btf__find_by_name_kind: 'int btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)',
  btf__type_cnt: 'uint32_t btf__type_cnt(void *btf)',
  // low-level map ops
  bpf_map_create:
    'int bpf_map_create(int type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, void *opts)',
  bpf_map_lookup_elem: 'int bpf_map_lookup_elem(int fd, void *key, void *value)',
  bpf_map_update_elem: 'int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)',
  bpf_map_delete_elem: 'int bpf_map_delete_elem(int fd, void *key)',
  bpf_map_get_next_key: 'int bpf_map_get_next_key(int fd, void *key, void *next_key)',
  bpf_map_lookup_batch:
    'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, void *opts)',
  bpf_map_update_batch: 'int bpf_map_update_batch(int fd, void *keys, void *values, void *count, void *opts)',
  bpf_map_delete_batch: 'int bpf_map_delete_batch(int fd, void *keys, void *count, void *opts)',
  // objects, ids, info
  bpf_obj_pin: 'int bpf_obj_pin(int fd, const char *path)',
  bpf_obj_get: 'int bpf_obj_get(const char *path)',
  bpf_obj_get_info_by_fd: 'int bpf_obj_get_info_by_fd(int fd, void *info, void *info_len)',
  bpf_prog_get_next_id: 'int bpf_prog_get_next_id(uint32_t start, void *next)',
  bpf_map_get_next_id: 'int bpf_map_get_next_id(uint32_t start, void *next)',
  bpf_link_get_next_id: 'int bpf_link_get_next_id(uint32_t start, void *next)',
  bpf_prog_get_fd_by_id: 'int bpf_prog_get_fd_by_id(uint32_t id)',
  bpf_map_get_fd_by_id: 'int bpf_map_get_fd_by_id(uint32_t id)',
  bpf_link_get_fd_by_id: 'int bpf_link_get_fd_by_id(uint32_t id)',
  // programs, attachments, links
  bpf_prog_test_run_opts: 'int bpf_prog_test_run_opts(int fd, void *opts)',
  bpf_prog_attach: 'int bpf_prog_attach(int prog_fd, int target_fd, int type, unsigned int flags)',
  bpf_prog_detach2: 'int bpf_prog_detach2(int prog_fd, int target_fd, int type)',
  bpf_link_create: 'int bpf_link_create(int prog_fd, int target_fd, int type, void *opts)',
  bpf_link_update: 'int bpf_link_update(int link_fd, int new_prog_fd, void *opts)',
  bpf_link_detach: 'int bpf_link_detach(int link_fd)',
  bpf_raw_tracepoint_open: 'int bpf_raw_tracepoint_open(const char *name, int prog_fd)',
  bpf_prog_query: 'int bpf_prog_query(int target_fd, int type, uint32_t query_flags, void *attach_flags, void *prog_ids, void *prog_cnt)',
  bpf_xdp_query: 'int bpf_xdp_query(int ifindex, int flags, void *opts)',
  bpf_xdp_detach: 'int bpf_xdp_detach(int ifindex, uint32_t flags, void *opts)',
  // BTF
  btf__load_from_kernel_by_id: 'void *btf__load_from_kernel_by_id(uint32_t id)',
  btf__free: 'void btf__free(void *btf)',
  btf__type_by_id: 'void *btf__type_by_id(void *btf, uint32_t id)',
  btf__name_by_offset: 'const char *btf__name_by_offset(void *btf, uint32_t off)',
  btf__resolve_size: 'int64_t btf__resolve_size(void *btf, uint32_t id)',
} as const;

const LIBC_SIGNATURES = {
  close: 'int close(int fd)',
  // Variadic in C: called as fcntl(fd, cmd, 'int', arg).
  fcntl: 'int fcntl(int fd, int cmd, ...)',
  setns: 'int setns(int fd, int nstype)',
  if_nametoindex: 'unsigned int if_nametoindex(const char *name)',
  vsnprintf: 'int vsnprintf(_Out_ char *buf, size_t size, const char *fmt, void *ap)',
  malloc: 'void *malloc(size_t size)',
  free: 'void free(void *p)',
  geteuid: 'uint32_t geteuid(void)',
  perf_event_open: 'long syscall(long nr, void *attr, int pid, int cpu, int group_fd, unsigned long flags)',
  syscall3: 'long syscall(long nr, long a, long b, long c)',
} as const;

export type Libbpf = { readonly [K in keyof typeof SIGNATURES]: Fn };
export type Libc = { readonly [K in keyof typeof LIBC_SIGNATURES]: Fn };

/**
 * The bindings and libbpf's message log, once per process. koffi's type names are process-wide and
 * libbpf has one print callback, so a second instance of this module (an ES module and a CommonJS
 * copy in one test process, or two installed copies of bpfctl) must share them, not define them
 * again ("Duplicate type name") or take the callback away from the first.
 */
interface ProcessState {
  libbpf?: Libbpf;
  libc?: Libc;
  recent: string[];
  printCb?: bigint;
}
const STATE_KEY = Symbol.for('bpfctl.loader.libbpf');
const shared = globalThis as Record<symbol, ProcessState | undefined>;
shared[STATE_KEY] ??= { recent: [] };
const state: ProcessState = shared[STATE_KEY];

function bind<T extends Record<string, string>>(handle: LibraryHandle, sigs: T): { [K in keyof T]: Fn } {
  const out = {} as { [K in keyof T]: Fn };
  for (const key of Object.keys(sigs) as (keyof T)[]) out[key] = handle.func(sigs[key] as string) as Fn;
  return out;
}

/** The libbpf functions; throws a plain Error if libbpf.so.1 cannot be loaded. */
export function lib(): Libbpf {
  if (state.libbpf) return state.libbpf;
  let handle: LibraryHandle | undefined;
  let firstErr: unknown;
  for (const p of LIBBPF_PATHS) {
    try {
      handle = koffi.load(p);
      break;
    } catch (err) {
      firstErr ??= err;
    }
  }
  if (!handle) throw new Error(`cannot load libbpf.so.1 (install libbpf1): ${String(firstErr)}`);
  const bound = bind(handle, SIGNATURES);
  installPrintHook(handle);
  state.libbpf = bound;
  return bound;
}

export function c(): Libc {
  state.libc ??= bind(koffi.load('libc.so.6'), LIBC_SIGNATURES);
  return state.libc;
}

// libbpf reports the "why" of a failure (ELF problems, relocation errors, the failing program)
// only through its print callback. We keep the recent messages so errors can quote them.
const recent = state.recent;
const RECENT_MAX = 200;

function installPrintHook(handle: LibraryHandle): void {
  const proto = koffi.proto('int bpfctl_libbpf_print_fn(int level, const char *fmt, void *ap)');
  const setPrint = handle.func('void *libbpf_set_print(bpfctl_libbpf_print_fn *fn)');
  const debug = !!process.env.BPFCTL_LIBBPF_DEBUG;
  const buf = Buffer.alloc(16384);
  state.printCb = koffi.register((level: number, fmt: string, ap: bigint) => {
    // level: 0 warn, 1 info, 2 debug. Debug output is huge (every relocation): keep it out.
    if (level > 1 && !debug) return 0;
    // x86-64 va_list decays to a pointer: vsnprintf can consume it directly (once).
    const n = c().vsnprintf(buf, buf.length, fmt, ap) as number;
    const text = buf.toString('utf8', 0, Math.max(0, Math.min(n, buf.length - 1))).trimEnd();
    if (debug) process.stderr.write(`libbpf: ${text}\n`);
    if (level <= 1) {
      recent.push(text);
      if (recent.length > RECENT_MAX) recent.splice(0, recent.length - RECENT_MAX);
    }
    return 0;
  }, koffi.pointer(proto));
  setPrint(state.printCb);
}

/** Forget libbpf's earlier messages; call before an operation whose messages an error may quote. */
export function clearLibbpfMessages(): void {
  recent.length = 0;
}

/** libbpf's warnings since the last clear, oldest first. */
export function libbpfMessages(): string[] {
  return [...recent];
}

/** The raw address of a buffer, for option structs that hold pointers (valid during the call). */
export function addressOf(buf: Uint8Array): bigint {
  return koffi.address(buf);
}

/** A view on C memory (no copy). */
export function viewOf(ptr: bigint, len: number): Uint8Array {
  return new Uint8Array(koffi.view(ptr, len));
}

/** errno after a C call that signals failure with NULL or -1. */
export function lastErrno(): number {
  return koffi.errno();
}
