// Reverses the payload. ASCII is reversed in place; anything else goes through a string so that
// multi-byte UTF-8 characters stay whole.
import type { Request } from 'bpfctl/runtime';

export default function reverse(req: Request): number | string {
  const b = req.body;
  if (b.every((c) => c < 0x80)) {
    b.reverse();
    return b.length;
  }
  return [...req.text()].reverse().join('');
}
