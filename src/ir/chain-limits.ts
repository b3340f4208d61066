/**
 * Limits of the chain dataplane. They are the sizes of the chain maps in docs/internals.md
 * (`routes`: 1024 versioned slots of `fn[16]` for at most 64 routes, `instances`: 64 entries of
 * `inst[32]`), so the C generator, the map codecs and policy validation all read them from here.
 */

import { MAX_FUNCTIONS, MAX_ROUTE_LEN } from '../schema/chain-maps.ts';

// The map geometry is the schema's (it also lays out the C structs); re-exported for the IR.
export { DESC_SIZE } from '../schema/descriptor.ts';
export { MAX_FUNCTIONS, MAX_INSTANCES, MAX_ROUTE_SLOTS, MAX_ROUTES } from '../schema/chain-maps.ts';
/** User functions: every `instances` entry but the gateway's (id 0). */
export const MAX_USER_FUNCTIONS = MAX_FUNCTIONS - 1;
/** Functions in one route (`struct bpfctl_route.fn[16]`); the return to the gateway is implicit. */
export const MAX_HOPS = MAX_ROUTE_LEN;
/** Entries in the `socks` sockhash. */
export const MAX_SOCKS = 4096;

export const MIN_BUFFER_SIZE = 64;
export const MAX_BUFFER_SIZE = 1 << 20;
export const MAX_BUFFER_COUNT = 1 << 16;
/** Buffer offsets are u32 in the descriptor; 1 GiB leaves room for the pool header. */
export const MAX_POOL_BYTES = 1 << 30;
export const MAX_IN_FLIGHT = 65535;

/** Function id of the gateway; user functions are 1..N in policy order. */
export const GATEWAY_ID = 0;
export const GATEWAY_NAME = 'gateway';

/** `drop_reasons` keys as identifiers (C enum names, counter names), in the order of docs/internals.md. */
export const DROP_REASON_KEYS = ['malformed', 'unknown_route', 'bad_hop', 'bad_buffer', 'no_instance', 'dead_socket'] as const;
export type DropReason = (typeof DROP_REASON_KEYS)[number];

/**
 * The sk_msg program never SK_DROPs (that breaks the sender's socket for good); it marks a refused
 * descriptor with this flag and the reason (`DROP_REASON_KEYS` index) in bits 4-6 of `flags`,
 * and sends it to the dead-letter socket. Receivers must discard descriptors with this flag.
 */
export const DESC_FLAG_DROPPED = 0x80;
export const DESC_DROP_REASON_SHIFT = 4;
export const DESC_DROP_REASON_MASK = 0x70;
/** `socks` key of the supervisor's dead-letter socket (fn 0xffff is never a function). */
export const DEAD_LETTER_KEY = 0xffffffff;
