// Reverses the payload (ASCII in place; anything else through a string, so UTF-8 stays whole).
import type { Request } from 'bpfctl/runtime';

export default function reverse(req: Request): number | string {
  const b = req.body;
  if (b.every((c) => c < 0x80)) {
    b.reverse();
    return b.length;
  }
  return [...req.text()].reverse().join('');
}
