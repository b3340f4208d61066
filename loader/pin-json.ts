/**
 * Small JSON records kept on bpffs, which holds only BPF objects: the record is the one value of
 * a pinned single-entry array map (`u32 length` + UTF-8 JSON). Used for the per-load manifests of
 * `bpfctl load FILE.bpf.o`, so they live and die with the pins they describe.
 */
import { existsSync } from 'node:fs';
import { LoaderError } from './errors.ts';
import { BpfMap } from './map.ts';
import { unpin } from './pin.ts';

const KEY = new Uint8Array(4);

/** Write `value` as JSON at `path`, replacing a record already there. */
export function writeJsonPin(path: string, value: unknown, name = 'bpfctl_record'): void {
  const text = Buffer.from(JSON.stringify(value), 'utf8');
  const size = Math.ceil((4 + text.length) / 256) * 256;
  const m = BpfMap.create({ type: 'array', name, keySize: 4, valueSize: size, maxEntries: 1 });
  try {
    const v = Buffer.alloc(size);
    v.writeUInt32LE(text.length, 0);
    text.copy(v, 4);
    m.update(KEY, v);
    // A new map replaces the old one: the size may have grown.
    if (existsSync(path)) unpin(path);
    m.pin(path);
  } finally {
    m.close();
  }
}

/** The JSON record at `path`. LoaderError E_NOENT when nothing is pinned there, E_MANIFEST when it is not a record. */
export function readJsonPin(path: string): unknown {
  const m = BpfMap.openPinned(path);
  try {
    const v = m.keySize === 4 && m.maxEntries === 1 && m.type === 'array' ? m.lookup(KEY) : null;
    const len = v ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).readUInt32LE(0) : -1;
    if (!v || len < 0 || len + 4 > v.length) throw new LoaderError('E_MANIFEST', 22, `${path} is not a bpfctl record (an array map of one JSON value)`);
    try {
      return JSON.parse(Buffer.from(v.buffer, v.byteOffset + 4, len).toString('utf8'));
    } catch {
      throw new LoaderError('E_MANIFEST', 22, `${path} holds no valid JSON record`);
    }
  } finally {
    m.close();
  }
}
