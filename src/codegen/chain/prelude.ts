/**
 * The shared part of the chain program (bpf/chain/chain.gen.h): limits, flags, drop reasons and
 * the structs, whose C text comes from the same schemas the runtime encodes with.
 */
import { DEAD_LETTER_KEY, DESC_DROP_REASON_SHIFT, DESC_FLAG_DROPPED, DROP_REASON_KEYS, MAX_FUNCTIONS, MAX_HOPS, MAX_INSTANCES, MAX_ROUTE_SLOTS, MAX_ROUTES, MAX_SOCKS } from '../../ir/chain-limits.ts';
import { configValue, countersValue, instancesValue, routeValue } from '../../schema/chain-maps.ts';
import { cStruct } from '../../schema/c-decl.ts';
import { DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF, DESC_SIZE, descriptor } from '../../schema/descriptor.ts';

export function limits(): string {
  const reasons = DROP_REASON_KEYS.map((k, i) => `\tDROP_${k.toUpperCase()} = ${i},`);
  return [
    '/* Map geometry: docs/internals.md "Chain maps"; bpfctl validates policies against the same limits. */',
    `#define MAX_ROUTES ${MAX_ROUTES}`,
    '/* Entries of routes: versions of routes, so a change never rewrites one that is in use. */',
    `#define MAX_ROUTE_SLOTS ${MAX_ROUTE_SLOTS}`,
    `#define MAX_FUNCTIONS ${MAX_FUNCTIONS}`,
    `#define MAX_HOPS ${MAX_HOPS}`,
    `#define MAX_INSTANCES ${MAX_INSTANCES}`,
    `#define MAX_SOCKS ${MAX_SOCKS}`,
    `#define DESC_SIZE ${DESC_SIZE}`,
    '#define GATEWAY_ID 0',
    '/* "no route/function known yet" in drop accounting */',
    '#define NO_ID 0xffffffffu',
    '',
    `#define DESC_FLAG_ERROR ${DESC_FLAG_ERROR}`,
    `#define DESC_FLAG_RESPONSE_NEW_BUF ${DESC_FLAG_RESPONSE_NEW_BUF}`,
    '/* Set by this program on a descriptor it refused, with the drop reason in bits 4-6. */',
    `#define DESC_FLAG_DROPPED 0x${DESC_FLAG_DROPPED.toString(16)}`,
    `#define DESC_DROP_REASON_SHIFT ${DESC_DROP_REASON_SHIFT}`,
    '/* socks key of the supervisor\'s dead-letter socket: refused descriptors go there. */',
    `#define DEAD_LETTER_KEY 0x${DEAD_LETTER_KEY.toString(16)}u`,
    '',
    '/* Keys of drop_reasons. */',
    'enum bpfctl_drop_reason {',
    ...reasons,
    `\tDROP_REASONS_MAX = ${DROP_REASON_KEYS.length},`,
    '};',
  ].join('\n');
}

export function structs(): string {
  return [
    '/* The descriptor one hop hands the next: 24 bytes, little-endian (src/schema/descriptor.ts). */',
    cStruct(descriptor),
    '',
    '/* routes[slot]: one version of a route; len 0 = free. The program reads len and fn only. */',
    cStruct(routeValue),
    '',
    '/* instances[function id]: live instance ids; the instance for a request is inst[req_id % count]. */',
    cStruct(instancesValue),
    '',
    '/* config[0]: pool geometry (buffer checks), hub port, route generation. */',
    cStruct(configValue),
    '',
    '/* fn_stats / route_stats, per CPU: bytes are payload bytes (buf_len), not descriptor bytes. */',
    cStruct(countersValue),
  ].join('\n');
}
