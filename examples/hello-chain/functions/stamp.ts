// Stamps the payload with the route it travelled, writing the result after the payload in place.
import type { Request } from 'bpfctl/runtime';

export default function stamp(req: Request): string {
  return `${req.text()} [${req.route}]`;
}
