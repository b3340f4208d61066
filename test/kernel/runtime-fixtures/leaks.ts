/**
 * The runtime tests' leak check: leaksSince() as it is. (It used to keep only ids this process
 * held an fd to, which hid everything released but still loaded; leaksSince() now tells this
 * run's objects from other runs' itself.)
 */
import { type LeakOptions, leaksSince, type Snapshot } from '../../helpers/leaks.ts';

export function ownLeaks(before: Snapshot, opts: LeakOptions = {}): Promise<string[]> {
  return leaksSince(before, opts);
}
