/** Run without privileges by test/unit/loader-spec.test.ts: prints an object's spec as JSON. */
import { readObjectSpec } from '../../loader/index.ts';

process.stdout.write(JSON.stringify(readObjectSpec(process.argv[2]!), (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
