import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { gaussianBlur } from '../../pipeline/blur.ts';
import type { DatasetAccess } from '../../pipeline/methods/types.ts';
import { rankPixels, stepFractions, trapezoidAuc, noiseMap, perturbationCurves } from '../../pipeline/metrics/curves.ts';
import { runMetrics } from '../../pipeline/metrics/run-metrics.ts';
import type { CurveMetric, MetricsJson } from '../../pipeline/metrics/types.ts';
import { linearModel } from '../helpers/attribution-models.ts';
import { methodContext } from '../helpers/method-context.ts';
import { handAuc, sigmoid, writeMaps } from '../helpers/metrics.ts';
import { vals } from '../helpers/tiny-models.ts';

const curveOnly = { randomization: { enabled: false }, pointingGame: { enabled: false }, curves: false } as const;

/** The entry of `method` for sample index i in a curve metric. */
const entry = (c: CurveMetric | undefined, i: number, method: string) => c!.samples[i].methods.find((m) => m.method === method)!;

describe('AUC arithmetic', () => {
  it('trapezoid over even and uneven steps matches hand computation', () => {
    // (0,1) (.25,.5) (.5,.5) (.75,0) (1,0): .25 * (.75 + .5 + .25 + 0) = .375
    expect(trapezoidAuc([0, 0.25, 0.5, 0.75, 1], [1, 0.5, 0.5, 0, 0])).toBeCloseTo(0.375, 12);
    // 10 pixels, 4 per step: fractions 0, .4, .8, 1 (last step partial)
    expect(stepFractions(10, 4)).toEqual([0, 0.4, 0.8, 1]);
    // .4 * (1 + .5)/2 + .4 * (.5 + .25)/2 + .2 * (.25 + 0)/2 = .3 + .15 + .025
    expect(trapezoidAuc(stepFractions(10, 4), [1, 0.5, 0.25, 0])).toBeCloseTo(0.475, 12);
  });

  it('equals RISE auc() = (sum - first/2 - last/2) / n when the step divides the pixels', () => {
    const ys = [0.9, 0.7, 0.65, 0.2, 0.1, 0.05, 0.05];
    const rise = (ys.reduce((a, b) => a + b, 0) - ys[0] / 2 - ys[6] / 2) / 6;
    expect(trapezoidAuc(stepFractions(12, 2), ys)).toBeCloseTo(rise, 12);
  });

  it('ranks pixels descending, ties by index, NaN last', () => {
    expect(Array.from(rankPixels([0.5, 2, NaN, 2, -1, 0.5]))).toEqual([1, 3, 0, 5, 4, 2]);
  });

  it('noise maps are deterministic per seed and differ between seeds', () => {
    expect(Array.from(noiseMap(5, 3))).toEqual(Array.from(noiseMap(5, 3)));
    expect(Array.from(noiseMap(5, 3))).not.toEqual(Array.from(noiseMap(5, 4)));
    for (const v of noiseMap(100, 1)) expect(v >= 0 && v < 1).toBe(true);
  });
});

describe('deletion and insertion on a linear model (logit_0 = sum w x, logit_1 = 0)', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('deletion of a perfect map matches the hand-computed curve on a 2x2 image', async () => {
    const w = [2, -1, 3, 0.5];
    const x = [0.5, 1, 0.25, 0.75];
    const model = linearModel([2, 2, 1], [w, [0, 0, 0, 0]]);
    const input = tf.tensor4d(x, [1, 2, 2, 1]);
    const ctx = await methodContext(model, input, { targets: [0] });
    // contributions w*x = [1, -1, 0.75, 0.375]: removal order 0, 2, 3, 1 (fill 0)
    await writeMaps(ctx, 'perfect', [w.map((v, i) => v * x[i])], [2, 2], [0]);
    const before = tf.memory().numTensors;
    const json = (await runMetrics(ctx, {}, { ...curveOnly, deletion: { pixelsPerStep: 1, fill: 0 }, insertion: { enabled: false } }))!;
    expect(tf.memory().numTensors).toBe(before);
    const logits = [1.125, 0.125, -0.625, -1.0, 0];
    const e = entry(json.deletion, 0, 'perfect');
    expect(json.deletion!.fractions).toEqual([0, 0.25, 0.5, 0.75, 1]);
    e.curve.forEach((p, k) => expect(p).toBeCloseTo(sigmoid(logits[k]), 5));
    expect(e.auc).toBeCloseTo(handAuc(logits.map(sigmoid)), 5);
    expect(e.class).toBe(0);
    expect(json.deletion!.fill).toEqual({ source: 'value', pixel: 0, input: [0] });
    expect(json.methods.map((m) => m.id)).toEqual(['perfect', 'random']);
    input.dispose();
    model.dispose();
  });

  describe('on an 8x8 image', () => {
    const n = 64;
    const w = vals(n, 5, 1);
    const x = vals(n, 6, 1).map((v) => Math.abs(v));
    let json: MetricsJson;
    let blurred: number[];

    beforeAll(async () => {
      const model = linearModel([8, 8, 1], [w, new Array(n).fill(0)]);
      const input = tf.tensor4d(x, [1, 8, 8, 1]);
      blurred = Array.from(tf.tidy(() => gaussianBlur(input, 1).dataSync()));
      const ctx = await methodContext(model, input, { targets: [0] });
      const contrib = w.map((v, i) => v * x[i]);
      await writeMaps(ctx, 'perfect', [contrib], [8, 8], [0]);
      await writeMaps(ctx, 'inverse', [contrib.map((v) => -v)], [8, 8], [0]);
      await writeMaps(ctx, 'perfect-insertion', [w.map((v, i) => v * (x[i] - blurred[i]))], [8, 8], [0]);
      const before = tf.memory().numTensors;
      json = (await runMetrics(ctx, {}, { ...curveOnly, deletion: { steps: 16, fill: 0 }, insertion: { steps: 16, sigma: 1 } }))!;
      expect(tf.memory().numTensors).toBe(before);
      input.dispose();
      model.dispose();
    });

    it('a perfect deletion ranking scores below random, random below the inverse ranking', () => {
      const auc = (m: string) => entry(json.deletion, 0, m).auc;
      expect(json.deletion!.pixelsPerStep).toBe(4);
      expect(auc('perfect')).toBeLessThan(auc('random'));
      expect(auc('random')).toBeLessThan(auc('inverse'));
      // removing the largest contributions first gives the lowest logit at every step
      for (const m of ['random', 'inverse', 'perfect-insertion']) {
        entry(json.deletion, 0, 'perfect').curve.forEach((p, k) => expect(p).toBeLessThanOrEqual(entry(json.deletion, 0, m).curve[k] + 1e-6));
      }
    });

    it('insertion starts from the blurred image, ends at the image, and the perfect insertion ranking is best', () => {
      const logit = (img: number[]) => img.reduce((s, v, i) => s + v * w[i], 0);
      const c = entry(json.insertion, 0, 'perfect-insertion').curve;
      expect(c[0]).toBeCloseTo(sigmoid(logit(blurred)), 5);
      expect(c.at(-1)).toBeCloseTo(sigmoid(logit(x)), 5);
      const auc = (m: string) => entry(json.insertion, 0, m).auc;
      expect(auc('perfect-insertion')).toBeGreaterThan(auc('random'));
      expect(auc('random')).toBeGreaterThan(auc('inverse'));
      expect(auc('perfect-insertion')).toBeGreaterThanOrEqual(auc('perfect'));
    });

    it('the table marks the best method per column and keeps the baseline out of it', () => {
      const row = (m: string) => json.table.find((r) => r.method === m)!;
      expect(row('perfect').best).toContain('deletion');
      expect(row('perfect-insertion').best).toContain('insertion');
      expect(row('random').baseline).toBe(true);
      expect(row('random').best).toEqual([]);
      expect(row('perfect').deletion).toBe(json.deletion!.mean.find((m) => m.method === 'perfect')!.auc);
    });
  });

  it('results do not depend on the batch size; maps at a lower resolution are upsampled before ranking', async () => {
    const w = vals(16, 7, 1);
    const xs = [vals(16, 8, 1), vals(16, 9, 1), vals(16, 10, 1)].map((a) => a.map(Math.abs));
    const run = async (batchSize: number) => {
      const model = linearModel([4, 4, 1], [w, new Array(16).fill(0)]);
      const input = tf.tensor4d(xs.flat(), [3, 4, 4, 1]);
      const ctx = await methodContext(model, input, { targets: [0, 0, 0] });
      ctx.settings.batchSize = batchSize;
      await writeMaps(ctx, 'coarse', [[1, 0, 0, 2], [0, 3, 1, 0], [2, 2, 0, 1]], [2, 2], [0, 0, 0]);
      const json = (await runMetrics(ctx, {}, { ...curveOnly, deletion: { pixelsPerStep: 3, fill: 0 }, insertion: { pixelsPerStep: 3, sigma: 1 } }))!;
      input.dispose();
      model.dispose();
      return json;
    };
    const a = await run(1);
    const b = await run(7);
    expect(a.deletion).toEqual(b.deletion);
    expect(a.insertion).toEqual(b.insertion);
    expect(a.deletion!.fractions).toEqual(stepFractions(16, 3));
    // sample 0's coarse map [[1, 0], [0, 2]] upsampled: the bottom-right 2x2 block ranks first
    const model = linearModel([4, 4, 1], [w, new Array(16).fill(0)]);
    const x0 = xs[0];
    const up = tf.tidy(() => tf.image.resizeBilinear(tf.tensor4d([1, 0, 0, 2], [1, 2, 2, 1]), [4, 4], false, true).dataSync());
    const order = rankPixels(up);
    expect(Array.from(order.slice(0, 1))).toEqual([15]);
    const curve = perturbationCurves(model, [4, 4, 1], [{ start: Float32Array.from(x0), end: new Float32Array(16), order, target: 0 }], 3, 4)[0];
    a.deletion!.samples[0].methods.find((m) => m.method === 'coarse')!.curve.forEach((p, k) => expect(p).toBeCloseTo(curve[k], 6));
    model.dispose();
  });

  it('compares each map with noise on its own grid: one baseline per grid, upsampled like the maps', async () => {
    const w = vals(16, 21, 1);
    const xs = [vals(16, 22, 1), vals(16, 23, 1)].map((a) => a.map(Math.abs));
    const model = linearModel([4, 4, 1], [w, new Array(16).fill(0)]);
    const input = tf.tensor4d(xs.flat(), [2, 4, 4, 1]);
    const ctx = await methodContext(model, input, { targets: [0, 0] });
    const contrib = xs.map((x) => w.map((v, i) => v * x[i]));
    await writeMaps(ctx, 'fine', contrib, [4, 4], [0, 0]);
    await writeMaps(ctx, 'coarse', [[1, 0, 0, 2], [0, 3, 1, 0]], [2, 2], [0, 0]);
    // input-sized raw maps declared to live on a 2x2 grid (as occlusion declares its stride cells)
    await writeMaps(ctx, 'blocky', contrib.map((c) => c.map((_, i) => (Math.floor(i / 8) * 2 + Math.floor((i % 4) / 2)) % 3)), [4, 4], [0, 0], [2, 2]);
    const json = (await runMetrics(ctx, {}, { ...curveOnly, baselineSeed: 5, deletion: { pixelsPerStep: 2, fill: 0 }, insertion: { pixelsPerStep: 2, sigma: 1 } }))!;
    expect(json.methods).toEqual([
      { id: 'fine', title: 'fine', against: 'random' },
      { id: 'coarse', title: 'coarse', against: 'random-2x2' },
      { id: 'blocky', title: 'blocky', against: 'random-2x2' },
      { id: 'random', title: 'Random (per pixel)', baseline: true, grid: [4, 4] },
      { id: 'random-2x2', title: 'Random (2×2 grid)', baseline: true, grid: [2, 2] },
    ]);
    // sample i's 2x2 baseline: noiseMap(4, seed + i) upsampled bilinearly (half-pixel centres), as the maps
    for (const i of [0, 1]) {
      const up = tf.tidy(() => tf.image.resizeBilinear(tf.tensor4d(noiseMap(4, 5 + i), [1, 2, 2, 1]), [4, 4], false, true).dataSync());
      const curve = perturbationCurves(model, [4, 4, 1], [{ start: Float32Array.from(xs[i]), end: new Float32Array(16), order: rankPixels(up), target: 0 }], 2, 4)[0];
      entry(json.deletion, i, 'random-2x2').curve.forEach((p, k) => expect(p).toBeCloseTo(curve[k], 6));
      const pixel = perturbationCurves(model, [4, 4, 1], [{ start: Float32Array.from(xs[i]), end: new Float32Array(16), order: rankPixels(noiseMap(16, 5 + i)), target: 0 }], 2, 4)[0];
      entry(json.deletion, i, 'random').curve.forEach((p, k) => expect(p).toBeCloseTo(pixel[k], 6));
    }
    // each method's verdict is against its own baseline
    const mean = (c: CurveMetric | undefined, id: string) => c!.mean.find((m) => m.method === id)!.auc;
    for (const r of json.table.filter((t) => !t.baseline)) {
      expect(r.against).toBe(json.methods.find((m) => m.id === r.method)!.against);
      expect(r.beats).toEqual({
        deletion: mean(json.deletion, r.method) < mean(json.deletion, r.against!),
        insertion: mean(json.insertion, r.method) > mean(json.insertion, r.against!),
      });
    }
    // the exact ranking of a linear model's contributions beats per-pixel chance on deletion
    expect(json.table.find((r) => r.method === 'fine')!.beats!.deletion).toBe(true);
    expect(json.table.filter((r) => r.baseline).every((r) => r.beats === undefined && r.against === undefined)).toBe(true);
    input.dispose();
    model.dispose();
  });

  it('deletion fills with the per-channel dataset mean, streamed', async () => {
    const model = linearModel([2, 2, 3], [vals(12, 11, 1), new Array(12).fill(0)]);
    const input = tf.tensor4d(vals(12, 12, 1).map(Math.abs), [1, 2, 2, 3]);
    const images = [vals(12, 13, 1), vals(12, 14, 1), vals(12, 15, 1)].map((a) => a.map(Math.abs));
    const dataset: DatasetAccess = {
      refs: images.map((_, i) => ({ id: `d${i}`, path: `/d${i}.png`, source: `d${i}.png` })),
      async *batches(batchSize = 2) {
        for (let s = 0; s < images.length; s += batchSize) {
          const part = images.slice(s, s + batchSize);
          yield { input: tf.tensor4d(part.flat(), [part.length, 2, 2, 3]), refs: [], display: [], start: s };
        }
      },
    };
    const ctx = await methodContext(model, input, { targets: [0], dataset });
    ctx.settings.batchSize = 2;
    await writeMaps(ctx, 'm', [[1, 2, 3, 4]], [2, 2], [0]);
    const before = tf.memory().numTensors;
    const json = (await runMetrics(ctx, {}, { ...curveOnly, insertion: { enabled: false }, deletion: { pixelsPerStep: 2 } }))!;
    expect(tf.memory().numTensors).toBe(before);
    const mean = [0, 1, 2].map((c) => images.flatMap((img) => [0, 1, 2, 3].map((p) => img[p * 3 + c])).reduce((a, b) => a + b, 0) / 12);
    expect(json.deletion!.fill.source).toBe('dataset');
    expect(json.deletion!.fill.images).toBe(3);
    json.deletion!.fill.input.forEach((v, c) => expect(v).toBeCloseTo(mean[c], 5));
    input.dispose();
    model.dispose();
  });
});
