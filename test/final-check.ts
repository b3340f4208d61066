/**
 * Runs after the whole suite: nothing any test run left may still be on the machine. It looks at
 * everything the per-file snapshot does (test/helpers/leaks.ts): programs, maps and links of every
 * type, every pin under bpffs (/sys/fs/bpf/bpfctl and bench pins included), bpfctl's cgroups,
 * pool files in /dev/shm and on hugetlbfs, run, temporary and cache directories, processes the
 * tests started, network namespaces and test interfaces. What belongs to a run still going (the
 * pid in its name is alive, or a live process holds it) is not counted; see leftovers().
 * It fails (throws) if it cannot look.
 */
import { leftovers } from './helpers/leaks.ts';

const problems = leftovers();
if (problems.length) {
  process.stderr.write(`final check: the test suite left things behind:\n  ${problems.join('\n  ')}\n`);
  process.exit(1);
}
process.stdout.write('final check: nothing left loaded, pinned, mapped, running or configured\n');
