/**
 * The boutique's wire format between hops: one JSON document per request, read from the pool
 * buffer and written back in place. Every function parses what the previous hop wrote, adds its
 * part and hands the document on, so a request carries all it needs (no service calls back).
 */
import { FunctionError, type Request } from 'bpfctl/runtime';

/** A JSON object (the only shape the boutique's hops exchange). */
export type Doc = Record<string, unknown>;

/**
 * The request payload as a JSON object. An empty body is `{}` (GET-style calls such as
 * `curl localhost:8080/products`).
 * @throws FunctionError 400 when the body is not a JSON object
 */
export function readDoc(req: Request): Doc {
  if (req.body.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(req.text());
  } catch (err) {
    throw new FunctionError(400, `body is not valid JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new FunctionError(400, 'body must be a JSON object');
  return v as Doc;
}

/** The string at `doc[key]`, trimmed. @throws FunctionError 400 when missing or not a string */
export function needString(doc: Doc, key: string, what = key): string {
  const v = doc[key];
  if (typeof v !== 'string' || v.trim() === '') throw new FunctionError(400, `'${what}' must be a non-empty string`);
  return v.trim();
}

/** The integer at `doc[key]` within [min, max], or `fallback` when absent. @throws FunctionError 400 */
export function optInt(doc: Doc, key: string, min: number, max: number, fallback: number): number {
  const v = doc[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new FunctionError(400, `'${key}' must be an integer from ${min} to ${max}`);
  return v;
}

/** The object at `doc[key]`. @throws FunctionError 400 when missing or not an object */
export function needObject(doc: Doc, key: string): Doc {
  const v = doc[key];
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new FunctionError(400, `'${key}' must be an object`);
  return v as Doc;
}

/** The document the next hop reads (the dispatcher encodes the string into the request's buffer). */
export function writeDoc(doc: Doc): string {
  return JSON.stringify(doc);
}
