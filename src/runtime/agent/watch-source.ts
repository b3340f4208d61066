/**
 * Following a file the agent reads while it runs (the policy source, the node-link secret) when
 * it may be a Kubernetes volume: a ConfigMap or Secret is mounted as a directory whose files are
 * symlinks into `..data`, which the kubelet swaps in one rename, and an editor renames over a
 * file. A watch on the file itself would stay on the old inode, so the directory is watched;
 * events are debounced (one swap is several of them), and a slow content poll backs the watch up
 * where fs.watch misses changes (network mounts).
 */
import { type FSWatcher, watch } from 'node:fs';

export interface SourceWatchOptions {
  /** The directory holding what is followed. */
  dir: string;
  /** What is followed, as text ('' when it cannot be read): the poll compares it. */
  read(): string;
  /** Called after a change settled (debounced), also when the text read is unchanged (files beside it may have changed). */
  onChange(): void;
  debounceMs?: number;
  pollMs?: number;
  log(line: string): void;
}

export interface SourceWatch {
  close(): void;
}

export function watchSource(o: SourceWatchOptions): SourceWatch {
  let last = o.read();
  let debounce: NodeJS.Timeout | null = null;
  const changed = () => {
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = null;
      last = o.read();
      o.onChange();
    }, o.debounceMs ?? 300);
  };
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(o.dir, { persistent: false }, changed);
    watcher.on('error', (err) => o.log(`[agent] watching ${o.dir}: ${err.message}`));
  } catch (err) {
    o.log(`[agent] cannot watch ${o.dir} (${(err as Error).message}); checking every ${(o.pollMs ?? 2000) / 1000} s`);
  }
  const poll = setInterval(() => {
    if (o.read() !== last) changed();
  }, o.pollMs ?? 2000);
  return {
    close: () => {
      if (debounce) clearTimeout(debounce);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
