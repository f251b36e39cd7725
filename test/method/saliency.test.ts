/**
 * Saliency: on a linear model y_k = sum(W_k * x) the input gradient is W_k, so the map is
 * max_c |W_k| (abs-max) or sum_c W_k^2 (squared) exactly; on a smooth nonlinear net the map
 * matches central finite differences of the logit; and it runs on the real Darknet Tiny.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { saliency } from '../../pipeline/methods/saliency.ts';
import { artifact, darknetOnChelsea, finiteAndVaried, haveFixtures, linearModel, scoreOf, smoothModel } from '../helpers/attribution-models.ts';
import { centralDiff, maxAbsDiff } from '../helpers/finite-diff.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';
import { vals } from '../helpers/tiny-models.ts';

if (!haveFixtures) console.warn('skipping the Darknet Tiny saliency test: ../shared/fixtures is absent');

const SHAPE: [number, number, number] = [3, 4, 2];
const N = 3 * 4 * 2;
const W0 = vals(N, 11, 2);
const W1 = vals(N, 12, 2);

/** Per-pixel reduction of a flat HWC array with 2 channels. */
const perPixel = (v: number[], f: (a: number, b: number) => number) => Array.from({ length: N / 2 }, (_, p) => f(v[2 * p], v[2 * p + 1]));

describe('saliency', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('is max_c |W| (abs-max) and sum_c W^2 (squared) on a linear model, per sample and target', async () => {
    const model = linearModel(SHAPE, [W0, W1]);
    const input = tf.tensor4d([...vals(N, 1), ...vals(N, 2)], [2, ...SHAPE]);
    for (const variant of ['abs-max', 'squared'] as const) {
      const ctx = await methodContext(model, input, { targets: [0, 1] });
      const arts = await runMethod(saliency, ctx, { variant });
      const expect0 = variant === 'abs-max' ? perPixel(W0, (a, b) => Math.max(Math.abs(a), Math.abs(b))) : perPixel(W0, (a, b) => a * a + b * b);
      const expect1 = variant === 'abs-max' ? perPixel(W1, (a, b) => Math.max(Math.abs(a), Math.abs(b))) : perPixel(W1, (a, b) => a * a + b * b);
      const r0 = await readRaw(ctx, artifact(arts, 'saliency/s0/0/heatmap'));
      const r1 = await readRaw(ctx, artifact(arts, 'saliency/s1/1/heatmap'));
      expect(r0.shape).toEqual([3, 4]);
      expect(Array.from(r0.data)).toEqual(expect0);
      expect(Array.from(r1.data)).toEqual(expect1);
      expect(artifact(arts, 'saliency/s0/0/heatmap').stats?.variant).toBe(variant);
      expect(artifact(arts, 'saliency/s1/1/overlay').className).toBe('class 1');
    }
    input.dispose();
    model.dispose();
  });

  it('explains the class given by the target option (index or name)', async () => {
    const model = linearModel(SHAPE, [W0, W1]);
    const input = tf.tensor4d(vals(N, 3), [1, ...SHAPE]);
    const ctx = await methodContext(model, input, { classes: ['cat', 'dog'], targets: [0] });
    const arts = await runMethod(saliency, ctx, { target: 'dog' });
    const r = await readRaw(ctx, artifact(arts, 'saliency/s0/1/heatmap'));
    expect(Array.from(r.data)).toEqual(perPixel(W1, (a, b) => Math.max(Math.abs(a), Math.abs(b))));
    await expect(saliency.run(ctx, saliency.options.parse({ target: 'cow' }))).rejects.toThrow(/no class "cow"/);
    input.dispose();
    model.dispose();
  });

  it('matches central finite differences of the logit on a smooth nonlinear net', async () => {
    const model = smoothModel();
    const n = 5 * 5 * 3;
    const xs = [vals(n, 41, 1), vals(n, 42, 1)];
    const input = tf.tensor4d(xs.flat(), [2, 5, 5, 3]);
    const targets = [2, 0];
    const ctx = await methodContext(model, input, { targets });
    const arts = await runMethod(saliency, ctx);
    for (let i = 0; i < 2; i++) {
      const fd = centralDiff((x) => scoreOf(model, x, targets[i]), xs[i], Array.from({ length: n }, (_, k) => k), 1e-2);
      const expected = Array.from({ length: 25 }, (_, p) => Math.max(...fd.slice(3 * p, 3 * p + 3).map(Math.abs)));
      const raw = await readRaw(ctx, artifact(arts, `saliency/s${i}/${targets[i]}/heatmap`));
      const scale = Math.max(...expected);
      expect(scale).toBeGreaterThan(0.05);
      expect(maxAbsDiff(raw.data, expected) / scale).toBeLessThan(2e-3);
    }
    input.dispose();
    model.dispose();
  });

  it.skipIf(!haveFixtures)('runs on the real Darknet Tiny for chelsea.png', async () => {
    const { model, input, labels } = await darknetOnChelsea();
    const ctx = await methodContext(model, input, { classes: labels });
    const arts = await runMethod(saliency, ctx);
    const heat = arts.find((a) => a.id.endsWith('/heatmap'))!;
    expect(heat.className).toBe('Egyptian cat');
    const raw = await readRaw(ctx, heat);
    expect(raw.shape).toEqual([224, 224]);
    expect(finiteAndVaried(raw.data)).toBe(true);
    input.dispose();
    model.dispose();
  }, 120_000);
});
