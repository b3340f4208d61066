/**
 * A second (third, ...) process for the pool tests, spawned as
 * `BPFCTL_POOL_CHILD=1 node --import tsx test/kernel/pool-child.ts MODE PATH ARGS`. Does nothing
 * when imported without that variable, since the test runner may load every file here.
 *
 *   stress PATH MS HOLD      the same stamp-and-check loop as test/c/pool_test.c stress
 *   hold PATH N              allocate N buffers, print "ready", stay alive until killed
 */
import { Pool } from '../../src/runtime/pool/index.ts';

function stress(pool: Pool, ms: number, hold: number): void {
  const held: { offset: number; gen: number; seq: number }[] = [];
  const pid = process.pid;
  let seq = 0;
  let ops = 0;
  let exhausted = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(ms) * 1_000_000n;
  for (let i = 0; i & 255 || process.hrtime.bigint() < end; i++) {
    while (held.length < hold) {
      const ref = pool.alloc(pid);
      if (!ref) {
        exhausted++;
        break;
      }
      const view = new DataView(pool.bytes(ref.offset, 8).buffer, ref.offset, 8);
      view.setUint32(0, pid, true);
      view.setUint32(4, ++seq, true);
      held.push({ offset: ref.offset, gen: ref.gen, seq });
      ops++;
    }
    const keep = held.length >> 1;
    while (held.length > keep) {
      const h = held.pop()!;
      const view = new DataView(pool.bytes(h.offset, 8).buffer, h.offset, 8);
      if (view.getUint32(0, true) !== pid || view.getUint32(4, true) !== h.seq) {
        throw new Error(`buffer at ${h.offset} handed out twice: stamp ${view.getUint32(0, true)}/${view.getUint32(4, true)}, mine ${pid}/${h.seq}`);
      }
      pool.free(h, pid);
      ops++;
    }
  }
  for (const h of held) pool.free(h, pid);
  ops += held.length;
  const ns = Number(process.hrtime.bigint() - t0);
  process.stdout.write(`${JSON.stringify({ pid, ops, exhausted, nsPerOp: ns / ops })}\n`);
}

function main(argv: string[]): void {
  const [mode, path, a, b] = argv;
  const pool = Pool.open(path!);
  if (mode === 'stress') {
    stress(pool, Number(a), Number(b));
    pool.close();
  } else if (mode === 'hold') {
    for (let i = 0; i < Number(a); i++) if (!pool.alloc()) throw new Error(`exhausted after ${i}`);
    process.stdout.write('ready\n');
    setInterval(() => {}, 1 << 30);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

if (process.env.BPFCTL_POOL_CHILD === '1') main(process.argv.slice(2));
