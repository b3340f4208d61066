// Test handler: fails on request, answers in a new buffer on request, otherwise appends "+".
import { FunctionError, type Request } from '../../../src/runtime/sdk/index.ts';

export default async function flaky(req: Request): Promise<Uint8Array | string> {
  const text = req.text();
  const lower = text.toLowerCase();
  if (lower.includes('boom')) throw new Error('boom');
  if (lower.includes('teapot')) throw new FunctionError(418, 'short and stout');
  if (lower.includes('slow')) await new Promise((r) => setTimeout(r, 20));
  if (lower.includes('fresh')) {
    const out = req.alloc(text.length + 7);
    out.set(new TextEncoder().encode(`fresh(${text})`.slice(0, out.length)));
    return out;
  }
  return `${text}+`;
}
