// The C baseline for bench/maps.ts: the same hash-map update and lookup loops, through the same
// libbpf calls the TypeScript loader makes, so the ratio isolates the cost of the FFI path.
// Usage: map-bench <iterations>; prints one JSON line.
//        map-bench serve: the same map and loops, run on request so that bench/maps.ts can pair
//        each C chunk with a TypeScript chunk run right next to it: reads "lookup N" or "update N"
//        lines on stdin, answers each with the loop's ns per op on one line.
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

// The timed loops: the key written before each call, the value read after each lookup.
static double update_loop(int fd, long n) {
  uint32_t key;
  uint64_t value;
  double t0 = now_ns();
  for (long i = 0; i < n; i++) {
    key = i & (ENTRIES - 1);
    value = i;
    if (bpf_map_update_elem(fd, &key, &value, BPF_ANY)) exit(2);
  }
  return (now_ns() - t0) / n;
}

static uint64_t sum;

static double lookup_loop(int fd, long n) {
  uint32_t key;
  uint64_t value;
  double t0 = now_ns();
  for (long i = 0; i < n; i++) {
    key = i & (ENTRIES - 1);
    if (bpf_map_lookup_elem(fd, &key, &value)) exit(3);
    sum += value;
  }
  return (now_ns() - t0) / n;
}

static int serve(int fd) {
  char op[16];
  long n;
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (scanf("%15s %ld", op, &n) == 2 && n > 0) {
    if (strcmp(op, "lookup") == 0) printf("%.2f\n", lookup_loop(fd, n));
    else if (strcmp(op, "update") == 0) printf("%.2f\n", update_loop(fd, n));
    else return 4;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 3 && strcmp(argv[1], "openload") == 0) return openload(argv[2], atol(argv[3]));
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "c_bench", 4, 8, ENTRIES, NULL);
  if (fd < 0) {
    fprintf(stderr, "bpf_map_create: %d\n", fd);
    return 1;
  }
  uint32_t key;
  uint64_t value = 0;
  for (key = 0; key < ENTRIES; key++) bpf_map_update_elem(fd, &key, &value, BPF_ANY);
  if (argc > 1 && strcmp(argv[1], "serve") == 0) return serve(fd);
  long n = argc > 1 ? atol(argv[1]) : 200000;
  double updateNs = update_loop(fd, n);
  double lookupNs = lookup_loop(fd, n);
  printf("{\"iterations\":%ld,\"updateNs\":%.1f,\"lookupNs\":%.1f,\"checksum\":%llu}\n", n, updateNs, lookupNs, (unsigned long long)sum);
  return 0;
}
