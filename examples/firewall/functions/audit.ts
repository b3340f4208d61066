// The firewall's one chain function: records what reached the audit route and answers with a
// short receipt, so the policy also exercises the sk_msg path next to its XDP front door.
import type { Request } from 'bpfctl/runtime';

export default function audit(req: Request): string {
  return `audited ${req.body.length} bytes on ${req.route}`;
}
