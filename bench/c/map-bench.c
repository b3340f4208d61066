// The C baseline for bench/maps.ts: the same hash-map update and lookup loops, through the same
// libbpf calls the TypeScript loader makes, so the ratio isolates the cost of the FFI path.
// Usage: map-bench <iterations>; prints one JSON line.
//        map-bench openload <object.bpf.o> <rounds>: bpf_object__open_file + load + close in this
//        process, the libbpf baseline for the loader's open+load; prints one JSON line.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <string.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ENTRIES 1024

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args) {
  (void)level;
  (void)fmt;
  (void)args;
  return 0;
}

static int openload(const char *path, long rounds) {
  libbpf_set_print(quiet);
  double first0 = now_ns();
  struct bpf_object *warm = bpf_object__open_file(path, NULL);
  if (!warm) return 4;
  bpf_object__close(warm);
  double first = now_ns() - first0;
  double total = 0;
  for (long i = 0; i < rounds; i++) {
    double t0 = now_ns();
    struct bpf_object *o = bpf_object__open_file(path, NULL);
    if (!o || bpf_object__load(o)) return 5;
    total += now_ns() - t0;
    bpf_object__close(o);
  }
  printf("{\"rounds\":%ld,\"openLoadMs\":%.3f,\"firstOpenMs\":%.3f}\n", rounds, total / rounds / 1e6, first / 1e6);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 3 && strcmp(argv[1], "openload") == 0) return openload(argv[2], atol(argv[3]));
  long n = argc > 1 ? atol(argv[1]) : 200000;
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "c_bench", 4, 8, ENTRIES, NULL);
  if (fd < 0) {
    fprintf(stderr, "bpf_map_create: %d\n", fd);
    return 1;
  }
  uint32_t key;
  uint64_t value = 0;
  for (key = 0; key < ENTRIES; key++) bpf_map_update_elem(fd, &key, &value, BPF_ANY);

  double t0 = now_ns();
  for (long i = 0; i < n; i++) {
    key = i & (ENTRIES - 1);
    value = i;
    if (bpf_map_update_elem(fd, &key, &value, BPF_ANY)) return 2;
  }
  double t1 = now_ns();
  uint64_t sum = 0;
  for (long i = 0; i < n; i++) {
    key = i & (ENTRIES - 1);
    if (bpf_map_lookup_elem(fd, &key, &value)) return 3;
    sum += value;
  }
  double t2 = now_ns();
  printf("{\"iterations\":%ld,\"updateNs\":%.1f,\"lookupNs\":%.1f,\"checksum\":%llu}\n", n, (t1 - t0) / n, (t2 - t1) / n,
         (unsigned long long)sum);
  return 0;
}
