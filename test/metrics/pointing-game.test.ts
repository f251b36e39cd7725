import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import type { ImageRef } from '../../pipeline/data.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { argmax, maxPoint, pointingHit, scaledTolerance } from '../../pipeline/metrics/pointing-game.ts';
import { runMetrics } from '../../pipeline/metrics/run-metrics.ts';
import { linearModel } from '../helpers/attribution-models.ts';
import { methodContext } from '../helpers/method-context.ts';
import { writeMaps } from '../helpers/metrics.ts';

describe('pointing game rules', () => {
  it('a hit is a maximum within the tolerance (Euclidean) of the box', () => {
    const box: [number, number, number, number] = [10, 10, 20, 20];
    expect(pointingHit([15, 15], box, 0)).toBe(true);
    expect(pointingHit([20, 10], box, 0)).toBe(true);
    expect(pointingHit([9.5, 15], box, 0)).toBe(false);
    expect(pointingHit([9.5, 15], box, 0.5)).toBe(true);
    // corner distance sqrt(50) = 7.07
    expect(pointingHit([5, 5], box, 7)).toBe(false);
    expect(pointingHit([5, 5], box, 7.1)).toBe(true);
  });

  it('the maximum is the first largest value, at its pixel centre; NaN never wins', () => {
    expect(argmax([1, 3, NaN, 3])).toBe(1);
    expect(argmax([NaN, NaN])).toBe(-1);
    expect(argmax([-Infinity, -Infinity])).toBe(0);
    expect(maxPoint([0, 0, 0, 0, 0, 5], 3)).toEqual([2.5, 1.5]);
  });

  it("the paper's 15 px are scaled by min(H, W) / 224", () => {
    expect(scaledTolerance(15, [224, 224])).toBe(15);
    expect(scaledTolerance(15, [112, 448])).toBe(7.5);
  });
});

describe('pointing game in runMetrics, with boxes from the sample list mapped through the resize', () => {
  let tmp: string;
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    tmp = await mkdtemp(join(tmpdir(), 'convlens-pointing-'));
    await sharp(Buffer.alloc(64 * 32 * 3, 100), { raw: { width: 64, height: 32, channels: 3 } }).png().toFile(join(tmp, 'wide.png'));
  });
  afterAll(async () => { await rm(tmp, { recursive: true, force: true }); });

  /** One 16x16 map with its maximum at pixel (u, v). */
  const peak = (u: number, v: number) => Array.from({ length: 256 }, (_, i) => (i === v * 16 + u ? 2 : i % 3 === 0 ? 1 : 0));

  async function run(resize: 'contain' | 'fill', tolerance?: number) {
    const model = linearModel([16, 16, 1], [new Array(256).fill(0.01), new Array(256).fill(0)]);
    const input = tf.tensor4d(new Float32Array(2 * 256).fill(0.5), [2, 16, 16, 1]);
    const ctx = await methodContext(model, input, { targets: [0, 0], preprocessing: { resize } });
    // the original is 64x32; the box is its top-right quarter
    const refs: ImageRef[] = [
      { id: 's0', path: join(tmp, 'wide.png'), source: 's0.png', box: [32, 0, 64, 16] },
      { id: 's1', path: join(tmp, 'wide.png'), source: 's1.png' },
    ];
    await writeMaps(ctx, 'inside', [peak(12, 5), peak(0, 0)], [16, 16], [0, 0]);
    await writeMaps(ctx, 'outside', [peak(2, 12), peak(12, 5)], [16, 16], [0, 0]);
    await writeMaps(ctx, 'edge', [peak(7, 5), peak(0, 0)], [16, 16], [0, 0]);
    // 4x4 map peaking in cell (row 1, col 3): upsampled, its first maximum is pixel (14, 5)
    const coarse = Array.from({ length: 16 }, (_, i) => (i === 7 ? 1 : 0));
    await writeMaps(ctx, 'coarse', [coarse, coarse], [4, 4], [0, 0]);
    const before = tf.memory().numTensors;
    const json = (await runMetrics(ctx, { refs }, {
      deletion: { enabled: false }, insertion: { enabled: false }, randomization: { enabled: false }, curves: false,
      ...(tolerance === undefined ? {} : { pointingGame: { tolerance } }),
    }))!;
    expect(tf.memory().numTensors).toBe(before);
    input.dispose();
    model.dispose();
    return json.pointingGame!;
  }

  it('contain: the 64x32 image becomes 16x8 at rows 4..12, so the box is [8, 4, 16, 8]', async () => {
    const pg = await run('contain');
    expect(pg.boxes).toEqual([{ id: 's0', box: [8, 4, 16, 8] }]);
    expect(pg.tolerance).toBeCloseTo((15 * 16) / 224, 5);
    const of = (m: string) => pg.methods.find((x) => x.method === m)!;
    expect([of('inside').hits, of('inside').total, of('inside').accuracy]).toEqual([1, 1, 1]);
    expect(of('inside').samples).toEqual([{ id: 's0', class: 0, hit: true, point: [12.5, 5.5] }]);
    expect([of('outside').hits, of('outside').total]).toEqual([0, 1]);
    // (7.5, 5.5) is 0.5 px left of the box: inside the 1.07 px tolerance
    expect(of('edge').hits).toBe(1);
    expect(of('coarse').samples[0].point).toEqual([14.5, 5.5]);
    expect(of('coarse').hits).toBe(1);
    expect(of('random').total).toBe(1);
    expect(of('random-4x4').total).toBe(1);
    expect(pg.methods.map((m) => m.method)).toEqual(['inside', 'outside', 'edge', 'coarse', 'random', 'random-4x4']);
  });

  it('without tolerance the edge map misses; with fill the box is [8, 0, 16, 8]', async () => {
    const strict = await run('contain', 0);
    expect(strict.methods.find((m) => m.method === 'edge')!.hits).toBe(0);
    const fill = await run('fill');
    expect(fill.boxes[0].box).toEqual([8, 0, 16, 8]);
    expect(fill.methods.find((m) => m.method === 'inside')!.hits).toBe(1);
  });
});
