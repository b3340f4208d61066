// Stamps the payload with the route it travelled and the node that stamped it. The format lives
// in ../lib, so the ConfigMap must carry a file no handler path names (it follows the import).
import type { Request } from 'bpfctl/runtime';
import { stampOf } from '../lib/stamp-format.ts';

export default function stamp(req: Request): string {
  return `${req.text()} ${stampOf(req.route)}`;
}
