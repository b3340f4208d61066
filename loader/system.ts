/**
 * What is loaded system-wide, by id (like `bpftool prog|map|link show`): walk the id space with
 * bpf_*_get_next_id, open each object briefly and read its info. Objects that vanish between
 * the two calls are skipped.
 */
import { check, ENOENT } from './errors.ts';

const EAGAIN = 11;
import { closeFd, type LinkInfo, linkInfo, type MapInfo, mapInfo, type ProgInfo, progFullName, progInfo } from './info.ts';
import { lib } from './libbpf.ts';

type Kind = 'prog' | 'map' | 'link';

function walk<T>(kind: Kind, read: (fd: number) => T): T[] {
  const l = lib();
  const nextId = l[`bpf_${kind}_get_next_id`];
  const byId = l[`bpf_${kind}_get_fd_by_id`];
  const out: T[] = [];
  const next = new Uint32Array(1);
  for (let id = 0; ; ) {
    const ret = nextId(id, next) as number;
    if (ret === -ENOENT) break;
    check(ret, `list ${kind}s`);
    id = next[0]!;
    const fd = byId(id) as number;
    // Gone since the id walk, or still being set up / torn down (EAGAIN): not listed.
    if (fd === -ENOENT || fd === -EAGAIN) continue;
    check(fd, `open ${kind} id ${id}`);
    try {
      out.push(read(fd));
    } finally {
      closeFd(fd);
    }
  }
  return out;
}

export function listPrograms(): ProgInfo[] {
  return walk('prog', progInfo);
}

/** listPrograms with each program's full BTF name (`fullName`, the kernel's is cut at 15). */
export function listProgramsDetailed(): (ProgInfo & { fullName?: string })[] {
  return walk('prog', (fd) => {
    const info = progInfo(fd);
    const fullName = info.name.length >= 15 ? progFullName(fd) : undefined;
    return fullName ? { ...info, fullName } : info;
  });
}

export function listMaps(): MapInfo[] {
  return walk('map', mapInfo);
}

export function listLinks(): LinkInfo[] {
  return walk('link', linkInfo);
}

export type { LinkInfo, MapInfo, ProgInfo };
