// Test handler: fails on request, answers in a new buffer on request, otherwise appends "+".
import { FunctionError, type Request } from '../../../src/runtime/sdk/index.ts';

export default async function flaky(req: Request): Promise<Uint8Array | string> {
  const text = req.text();
  if (text.includes('boom')) throw new Error('boom');
  if (text.includes('teapot')) throw new FunctionError(418, 'short and stout');
  if (text.includes('slow')) await new Promise((r) => setTimeout(r, 20));
  if (text.includes('fresh')) {
    const out = req.alloc(text.length + 6);
    out.set(new TextEncoder().encode(`fresh(${text})`.slice(0, out.length)));
    return out;
  }
  return `${text}+`;
}
