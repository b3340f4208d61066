/**
 * `bpfctl` from the TypeScript sources (under tsx), for the bench's idle measurement of
 * `bpfctl run` as a checkout runs it: `cli.ts <args...>` is `bpfctl <args...>`.
 */
import { main } from '../../../src/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
