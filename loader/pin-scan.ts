/**
 * Which pins on bpffs hold which objects: walk a bpffs tree, open each pin and read its id.
 * `bpfctl link ls` uses it to show where a link is pinned, and `link detach` to remove the pin
 * of the link it detaches (a pinned link stays attached until its last pin goes).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd, fdKind, linkInfo, mapInfo, progInfo } from './info.ts';
import { lib } from './libbpf.ts';
import { DEFAULT_BPFFS } from './pin.ts';

/** Pin paths by object id, for objects of `kind` pinned under `root` (unreadable pins are skipped). */
export function pinsByKind(kind: 'prog' | 'map' | 'link', root: string = DEFAULT_BPFFS, maxDepth = 8): Map<number, string[]> {
  const out = new Map<number, string[]>();
  const walk = (dir: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      let isDir: boolean;
      try {
        isDir = statSync(p).isDirectory();
      } catch {
        continue;
      }
      if (isDir) {
        if (depth < maxDepth) walk(p, depth + 1);
        continue;
      }
      const fd = lib().bpf_obj_get(p) as number;
      if (fd < 0) continue;
      try {
        if (fdKind(fd) !== kind) continue;
        const id = kind === 'link' ? linkInfo(fd).id : kind === 'prog' ? progInfo(fd).id : mapInfo(fd).id;
        const list = out.get(id) ?? [];
        list.push(p);
        out.set(id, list);
      } catch {
        // An object that vanished under us.
      } finally {
        closeFd(fd);
      }
    }
  };
  walk(root, 0);
  return out;
}
