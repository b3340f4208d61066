/**
 * The function SDK's public types: what a handler module default-exports and what it receives.
 */
import { BpfctlError } from '../../errors.ts';

/**
 * One request at one hop. The object and the views into the pool it gives are valid only until
 * the handler's result settles: the runtime then reuses the object for a later request (copy out
 * whatever a handler needs afterwards, e.g. `req.id` for a log line written later).
 */
export interface Request {
  /** Request id chosen by the gateway (unique among requests in flight). */
  readonly id: number;
  /** Route name as written in the policy (e.g. '/hello'). */
  readonly route: string;
  readonly routeId: number;
  /** This function's position in the route (0-based). */
  readonly hop: number;
  /** The function's name and this process's instance id. */
  readonly functionName: string;
  readonly instance: number;
  /** The payload: a zero-copy view of `length` bytes of the pool buffer. */
  readonly body: Uint8Array;
  /** The whole buffer (its full capacity), for writing a response in place: return its length. */
  readonly buffer: Uint8Array;
  /** The payload decoded as UTF-8 (a copy). */
  text(): string;
  /**
   * A new pool buffer of `n` bytes (n <= buffer capacity). Returning the view it gives sends that
   * buffer on instead of the request's (which is freed); views not returned are freed.
   * @throws FunctionError 413 when n exceeds the buffer size, 503 when the pool is exhausted.
   */
  alloc(n: number): Uint8Array;
}

/**
 * What a handler returns:
 * - a number: the response was written in place into `req.buffer`, this many bytes;
 * - a Uint8Array: a view from `req.alloc()` (sent as is), a view starting at `req.buffer[0]`
 *   (in place), or any other bytes (copied into the request's buffer);
 * - a string: encoded as UTF-8 straight into the request's buffer;
 * - nothing: the payload goes on unchanged.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: a handler that returns nothing must type-check
export type HandlerResult = number | string | Uint8Array | undefined | void;

export type Handler = (req: Request) => HandlerResult | Promise<HandlerResult>;

/**
 * Thrown by a handler to fail the request with a chosen HTTP status (any other throw is a 500).
 * The rest of the route is skipped and the gateway answers with `status` and the message.
 */
export class FunctionError extends BpfctlError {
  readonly status: number;
  constructor(status: number, message: string) {
    super('E_FUNCTION', message);
    this.status = status;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), status: this.status };
  }
}
