/**
 * The gateway statistics block is one contract in two languages: compile a tiny C program against
 * bpf/include/bpfctl/gateway_stats.h that prints offsetof/sizeof, the constants and the bucket
 * bounds, and compare every number with src/schema/gateway-stats.ts. The program also runs the C
 * writer helpers on a slot and the TS side decodes it, so both engines count the same way.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_INSTANCES, MAX_ROUTE_SLOTS } from '../../src/schema/chain-maps.ts';
import * as gw from '../../src/schema/gateway-stats.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const PROGRAM = `
#include <bpfctl/gateway_stats.h>
#include <stdio.h>
#include <stdlib.h>
#define O(f) printf("\\"%s\\":%zu,", #f, offsetof(struct bpfctl_gw_stats, f))
int main(void) {
  printf("{\\"off\\":{");
  O(magic); O(version); O(engine); O(pid); O(started); O(latency_sum); O(latency); O(status); O(route_replies); O(route_version);
  printf("\\"sizeof\\":%zu},", sizeof(struct bpfctl_gw_stats));
  printf("\\"magic\\":%u,\\"version\\":%u,\\"slots\\":%d,\\"node\\":%u,\\"native\\":%u,", BPFCTL_GW_STATS_MAGIC, BPFCTL_GW_STATS_VERSION,
         BPFCTL_GW_STATS_SLOTS, BPFCTL_GW_ENGINE_NODE, BPFCTL_GW_ENGINE_NATIVE);
  printf("\\"codes\\":%d,\\"buckets\\":%d,\\"routes\\":%d,\\"mapSize\\":%zu,\\"bounds\\":[", BPFCTL_GW_STATUS_CODES, BPFCTL_GW_LATENCY_BUCKETS,
         BPFCTL_GW_ROUTE_SLOTS, bpfctl_gw_stats_map_size());
  static const double b[BPFCTL_GW_LATENCY_BOUNDS] = {BPFCTL_GW_LATENCY_BOUNDS_LIST};
  for (int i = 0; i < BPFCTL_GW_LATENCY_BOUNDS; i++) printf("%s%.17g", i ? "," : "", b[i]);
  printf("],");
  /* the writer helpers on slot 1 of a zeroed mapping; the bytes go out as hex */
  void *map = calloc(1, bpfctl_gw_stats_map_size());
  struct bpfctl_gw_stats *s = bpfctl_gw_stats_slot(map, 1);
  bpfctl_gw_stats_init(s, BPFCTL_GW_ENGINE_NATIVE, 4242, 1700000000.5);
  bpfctl_gw_stats_response(s, 200); bpfctl_gw_stats_response(s, 200); bpfctl_gw_stats_response(s, 404);
  bpfctl_gw_stats_response(s, 999); bpfctl_gw_stats_response(s, 42);
  bpfctl_gw_stats_latency(s, 0.0001); bpfctl_gw_stats_latency(s, 0.0003); bpfctl_gw_stats_latency(s, 11.0);
  bpfctl_gw_stats_reply(s, 7, 1); bpfctl_gw_stats_reply(s, 7, 1); bpfctl_gw_stats_reply(s, 5000, 1);
  bpfctl_gw_stats_reply(s, 9, 1); bpfctl_gw_stats_reply(s, 9, 3); /* slot 9 reused by version 3: counted afresh */
  printf("\\"outOfRange\\":%d,\\"slot\\":\\"", bpfctl_gw_stats_slot(map, BPFCTL_GW_STATS_SLOTS) == NULL);
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < sizeof(*s); i++) printf("%02x", p[i]);
  printf("\\"}\\n");
  free(map);
  return 0;
}
`;

test('gateway_stats.h and gateway-stats.ts agree on every offset, size, constant and bound', () => {
  const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-gw-stats-`));
  try {
    writeFileSync(join(dir, 'layout.c'), PROGRAM);
    execFileSync('cc', ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-I', join(ROOT, 'bpf/include'), '-o', join(dir, 'layout'), join(dir, 'layout.c')], { stdio: 'pipe' });
    const c = JSON.parse(execFileSync(join(dir, 'layout'), { encoding: 'utf8' }));
    assert.equal(c.off, {
      magic: gw.OFF.magic,
      version: gw.OFF.version,
      engine: gw.OFF.engine,
      pid: gw.OFF.pid,
      started: gw.OFF.started,
      latency_sum: gw.OFF.latencySum,
      latency: gw.OFF.latency,
      status: gw.OFF.status,
      route_replies: gw.OFF.routeReplies,
      route_version: gw.OFF.routeVersion,
      sizeof: gw.SLOT_SIZE,
    });
    assert.is(c.magic, gw.MAGIC);
    assert.is(c.version, gw.VERSION);
    assert.is(c.slots, gw.SLOTS);
    assert.is(gw.SLOTS, MAX_INSTANCES, 'one slot per possible gateway instance');
    assert.is(c.node, gw.ENGINE.node);
    assert.is(c.native, gw.ENGINE.native);
    assert.is(c.codes, gw.STATUS_CODES);
    assert.is(c.buckets, gw.LATENCY_BUCKETS);
    assert.is(c.routes, gw.ROUTE_SLOTS);
    assert.is(gw.ROUTE_SLOTS, MAX_ROUTE_SLOTS, 'a counter for every route slot');
    assert.equal(c.bounds, [...gw.LATENCY_BOUNDS]);
    assert.is(c.mapSize, Math.ceil((gw.SLOTS * gw.SLOT_SIZE) / 4096) * 4096);
    assert.is(c.outOfRange, 1);

    // What the C helpers wrote, read with the TS offsets and counted the TS way.
    const bytes = Buffer.from(c.slot, 'hex');
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const f64 = (off: number) => v.getFloat64(off, true);
    assert.is(v.getUint32(gw.OFF.magic, true), gw.MAGIC);
    assert.is(v.getUint32(gw.OFF.version, true), gw.VERSION);
    assert.is(gw.engineName(v.getUint32(gw.OFF.engine, true)), 'native');
    assert.is(v.getUint32(gw.OFF.pid, true), 4242);
    assert.is(f64(gw.OFF.started), 1700000000.5);
    assert.is(f64(gw.OFF.status + 8 * gw.statusIndex(200)), 2);
    assert.is(f64(gw.OFF.status + 8 * gw.statusIndex(404)), 1);
    assert.is(f64(gw.OFF.status), 2, 'codes outside 100..599 are counted at status[0]');
    for (const [seconds, bucket] of [
      [0.0001, 0],
      [0.0003, 2],
      [11, gw.LATENCY_BOUNDS.length],
    ] as const) {
      assert.is(gw.latencyBucket(seconds), bucket);
      assert.is(f64(gw.OFF.latency + 8 * bucket), 1, `${seconds} s in bucket ${bucket}`);
    }
    assert.is(f64(gw.OFF.latencySum), 0.0001 + 0.0003 + 11);
    assert.is(f64(gw.OFF.routeReplies + 8 * 7), 2);
    assert.is(v.getUint32(gw.OFF.routeVersion + 4 * 7, true), 1);
    assert.is(f64(gw.OFF.routeReplies + 8 * 9), 1, 'a new version in a slot starts from zero');
    assert.is(v.getUint32(gw.OFF.routeVersion + 4 * 9, true), 3);
    let total = 0;
    for (let off = gw.OFF.routeReplies; off < gw.OFF.routeVersion; off += 8) total += f64(off);
    assert.is(total, 3, 'a reply on a slot out of range is not counted');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
