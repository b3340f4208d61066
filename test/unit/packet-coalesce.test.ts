/**
 * The coalescing rule of packet chains (bpf/include/bpfctl/packet_coalesce.h) through
 * test/c/packet_coalesce_test.c, on simulated arrival times with a 200 us window: a frame that
 * comes alone goes on at once, a steady flow goes on in batches of about window / gap frames, a
 * burst in full batches; no frame waits longer than the window, and every frame goes on once and
 * in order. The kernel test (test/kernel/packet-coalesce.test.ts) shows the same on real traffic.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type BuiltC, buildC, lastJson, runC } from '../helpers/packet-c.ts';

interface Outcome {
  frames: number;
  delivered: number;
  once: boolean;
  inOrder: boolean;
  batches: number;
  immediate: number;
  maxBatch: number;
  maxWaitUs: number;
  firstWaitUs: number;
  lastWaitUs: number;
  windowUs: number;
  idleWindows: boolean;
}

let built: BuiltC | undefined;

async function scenario(name: string): Promise<Outcome> {
  built ??= buildC('packet-coalesce', ['test/c/packet_coalesce_test.c']);
  const r = await runC(built.bin, [name]);
  assert.is(r.code, 0, r.stderr);
  const o = lastJson<Outcome>(r.stdout);
  // Whatever the traffic: every frame goes on, once, in the order it came, within the window.
  assert.is(o.delivered, o.frames, `${name}: every frame went on`);
  assert.ok(o.once, `${name}: each exactly once`);
  assert.ok(o.inOrder, `${name}: in order`);
  assert.ok(o.maxWaitUs <= o.windowUs, `${name}: no frame waited longer than the window (${o.maxWaitUs} us)`);
  assert.not.ok(o.idleWindows, `${name}: windows stop opening once the frames stop`);
  return o;
}

test('frames further apart than the window: none is held', async () => {
  const o = await scenario('sparse');
  assert.is(o.immediate, o.frames);
  assert.is(o.batches, o.frames);
  assert.is(o.maxWaitUs, 0);
});

test('a steady flow (a frame every 30 us): the first goes on at once, then batches of about 200/30', async () => {
  const o = await scenario('steady');
  assert.is(o.firstWaitUs, 0, 'the first frame after idle is not held');
  assert.is(o.immediate, 1, 'only the first');
  const perBatch = o.frames / o.batches;
  assert.ok(perBatch >= 6 && perBatch <= 7, `${perBatch.toFixed(2)} frames per batch`);
});

test('a burst: full batches go on without waiting for the window', async () => {
  const o = await scenario('burst');
  assert.is(o.maxBatch, 32, 'a full batch is handed on as soon as it is held');
  // 1 lone frame, then 100 at once: 3 full batches at once, the 4 left at the window's end.
  assert.is(o.batches, 1 + 3 + 1);
});

test('after the traffic stops, the window closes: the next lone frame goes on at once', async () => {
  const o = await scenario('pause');
  assert.is(o.lastWaitUs, 0);
  assert.ok(o.batches < o.frames / 2, `the flow before it was batched (${o.batches} batches for ${o.frames} frames)`);
});

test.after(() => built?.cleanup());

test.run();
