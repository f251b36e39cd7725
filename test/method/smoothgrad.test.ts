/**
 * SmoothGrad: with noise 0 every copy is the input, so the map is the saliency map; seeded runs
 * repeat exactly and other seeds differ; on a linear model the gradient is W at every noisy copy,
 * so the map is the saliency map for any noise level; the noise scale follows the input's range.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { saliency } from '../../pipeline/methods/saliency.ts';
import { smoothgrad } from '../../pipeline/methods/smoothgrad.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { artifact, darknetOnChelsea, finiteAndVaried, haveFixtures, linearModel, smoothModel } from '../helpers/attribution-models.ts';
import { maxAbsDiff } from '../helpers/finite-diff.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';
import { vals } from '../helpers/tiny-models.ts';

if (!haveFixtures) console.warn('skipping the Darknet Tiny SmoothGrad test: ../shared/fixtures is absent');

const n = 5 * 5 * 3;

async function maps(method: typeof saliency | typeof smoothgrad, model: ModelAdapter, input: tf.Tensor4D, targets: number[], options: Record<string, unknown>) {
  const ctx = await methodContext(model, input, { targets });
  const arts = await runMethod(method, ctx, options);
  return Promise.all(targets.map(async (t, i) => Array.from((await readRaw(ctx, artifact(arts, `${method.id}/s${i}/${t}/heatmap`))).data)));
}

describe('smoothgrad', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('equals saliency with noise 0 (both variants)', async () => {
    const model = smoothModel();
    const input = tf.tensor4d([...vals(n, 51), ...vals(n, 52)], [2, 5, 5, 3]);
    for (const variant of ['abs-max', 'squared']) {
      const sal = await maps(saliency, model, input, [1, 2], { variant });
      const sg = await maps(smoothgrad, model, input, [1, 2], { variant, noise: 0, n: 4 });
      expect(sg).toEqual(sal);
    }
    input.dispose();
    model.dispose();
  });

  it('repeats exactly for a seed, differs for another, and moves away from saliency with noise', async () => {
    const model = smoothModel();
    const input = tf.tensor4d(vals(n, 53), [1, 5, 5, 3]);
    const a = await maps(smoothgrad, model, input, [0], { noise: 0.3, n: 5, seed: 7 });
    const b = await maps(smoothgrad, model, input, [0], { noise: 0.3, n: 5, seed: 7 });
    const c = await maps(smoothgrad, model, input, [0], { noise: 0.3, n: 5, seed: 8 });
    const sal = await maps(saliency, model, input, [0], {});
    expect(a).toEqual(b);
    expect(maxAbsDiff(a[0], c[0])).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(a[0], sal[0])).toBeGreaterThan(1e-3);
    input.dispose();
    model.dispose();
  });

  it('equals saliency on a linear model for any noise level', async () => {
    const shape: [number, number, number] = [3, 4, 2];
    const model = linearModel(shape, [vals(24, 61, 2), vals(24, 62, 2)]);
    const input = tf.tensor4d([...vals(24, 63), ...vals(24, 64)], [2, ...shape]);
    const sal = await maps(saliency, model, input, [0, 1], {});
    for (const noise of [0.1, 0.5, 1]) {
      expect(await maps(smoothgrad, model, input, [0, 1], { noise, n: 6, seed: 3 })).toEqual(sal);
    }
    input.dispose();
    model.dispose();
  });

  it('sets sigma to noise x (max - min) of each image', async () => {
    const model = smoothModel();
    const x0 = vals(n, 71);
    const x1 = vals(n, 72, 3);
    const input = tf.tensor4d([...x0, ...x1], [2, 5, 5, 3]);
    const ctx = await methodContext(model, input, { targets: [0, 0] });
    const arts = await runMethod(smoothgrad, ctx, { noise: 0.2, n: 2, seed: 5 });
    const range = (v: number[]) => Math.max(...v) - Math.min(...v);
    expect(artifact(arts, 'smoothgrad/s0/0/heatmap').stats?.sigma).toBeCloseTo(0.2 * range(x0), 6);
    expect(artifact(arts, 'smoothgrad/s1/0/heatmap').stats?.sigma).toBeCloseTo(0.2 * range(x1), 6);
    expect(artifact(arts, 'smoothgrad/s1/0/heatmap').stats?.seed).toBe(6);
    input.dispose();
    model.dispose();
  });

  it.skipIf(!haveFixtures)('runs on the real Darknet Tiny for chelsea.png (4 noisy copies)', async () => {
    const { model, input, labels } = await darknetOnChelsea();
    const ctx = await methodContext(model, input, { classes: labels });
    const arts = await runMethod(smoothgrad, ctx, { n: 4 });
    const heat = arts.find((a) => a.id.endsWith('/heatmap'))!;
    expect(heat.className).toBe('Egyptian cat');
    const raw = await readRaw(ctx, heat);
    expect(raw.shape).toEqual([224, 224]);
    expect(finiteAndVaried(raw.data)).toBe(true);
    input.dispose();
    model.dispose();
  }, 120_000);
});
