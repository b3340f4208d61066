/**
 * Frames from a classic pcap file (what `tcpdump -w` writes): a 24-byte file header, then per
 * packet a 16-byte record header and the captured bytes. Read here in a few lines rather than
 * through a package: the npm readers are a native libpcap binding (`pcap`: node-gyp and
 * libpcap-dev for a format this small) or an old untyped stream emitter (`pcap-parser`), and
 * explain wants all frames of a buffer synchronously, with errors that say which record is bad.
 */
import { BpfctlError } from '../errors.ts';

/** A file that is not a classic pcap of Ethernet frames, or is cut short. */
export class PcapError extends BpfctlError {
  readonly file: string;
  constructor(file: string, message: string) {
    super('E_PCAP', `${file}: ${message}`);
    this.file = file;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), file: this.file };
  }
}

export interface PcapFrame {
  /** 1-based, as tcpdump and Wireshark number them. */
  readonly number: number;
  /** Seconds since the epoch, with the fraction the file keeps (micro- or nanoseconds). */
  readonly time: number;
  readonly data: Uint8Array;
  /** Length on the wire: more than data.length when the capture's snaplen cut the frame. */
  readonly origLen: number;
}

const LINKTYPE_ETHERNET = 1;
const LINKTYPE_NAMES: Readonly<Record<number, string>> = { 0: 'BSD loopback', 101: 'raw IP', 113: 'Linux cooked (SLL)', 276: 'Linux cooked v2 (SLL2)', 105: '802.11', 127: 'radiotap' };

/**
 * The frames of a classic pcap file's bytes (either byte order, micro- or nanosecond stamps).
 * @throws PcapError naming `file`: pcapng, another link type than Ethernet, a cut-short record
 */
export function readPcap(bytes: Uint8Array, file: string): PcapFrame[] {
  if (bytes.length < 24) throw new PcapError(file, `not a pcap file: ${bytes.length} bytes, the file header alone is 24`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = v.getUint32(0, false);
  if (magic === 0x0a0d0d0a) throw new PcapError(file, 'is pcapng; explain reads classic pcap (convert: editcap -F pcap IN OUT, or tcpdump -w)');
  const le = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
  const nanos = magic === 0xa1b23c4d || magic === 0x4d3cb2a1;
  if (!le && !nanos && magic !== 0xa1b2c3d4) throw new PcapError(file, `not a pcap file (magic 0x${magic.toString(16).padStart(8, '0')})`);
  const link = v.getUint32(20, le) & 0xffff;
  if (link !== LINKTYPE_ETHERNET) throw new PcapError(file, `link type ${link}${LINKTYPE_NAMES[link] ? ` (${LINKTYPE_NAMES[link]})` : ''} is not Ethernet: XDP sees Ethernet frames (capture on the interface itself, not 'any')`);
  const frames: PcapFrame[] = [];
  for (let off = 24; off < bytes.length; ) {
    const n = frames.length + 1;
    if (off + 16 > bytes.length) throw new PcapError(file, `record ${n} cut short: its header needs 16 bytes at offset ${off}, ${bytes.length - off} left`);
    const incl = v.getUint32(off + 8, le);
    if (off + 16 + incl > bytes.length) throw new PcapError(file, `record ${n} cut short: ${incl} bytes captured, ${bytes.length - off - 16} left in the file`);
    const time = v.getUint32(off, le) + v.getUint32(off + 4, le) / (nanos ? 1e9 : 1e6);
    frames.push({ number: n, time, data: bytes.subarray(off + 16, off + 16 + incl), origLen: v.getUint32(off + 12, le) });
    off += 16 + incl;
  }
  return frames;
}

/** A classic pcap file (little-endian, microseconds, Ethernet) of `frames`: for tests and tools. */
export function writePcap(frames: readonly Uint8Array[], snaplen = 65535): Uint8Array {
  const out = new Uint8Array(24 + frames.reduce((n, f) => n + 16 + f.length, 0));
  const v = new DataView(out.buffer);
  v.setUint32(0, 0xa1b2c3d4, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setUint32(16, snaplen, true);
  v.setUint32(20, LINKTYPE_ETHERNET, true);
  let off = 24;
  frames.forEach((f, i) => {
    v.setUint32(off, 1_700_000_000 + i, true);
    v.setUint32(off + 8, f.length, true);
    v.setUint32(off + 12, f.length, true);
    out.set(f, off + 16);
    off += 16 + f.length;
  });
  return out;
}
