// Upper-cases the payload in place: no copy, the response is the request's own buffer.
import type { Request } from 'bpfctl/runtime';

export default function upper(req: Request): number {
  const b = req.body;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c >= 0x61 && c <= 0x7a) b[i] = c - 0x20;
  }
  return b.length;
}
