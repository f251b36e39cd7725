/**
 * Integrated gradients: on a linear model A = W * (x - x') exactly for any baseline and step
 * count; on a smooth nonlinear net the attributions sum to S(x) - S(x') (completeness) within
 * 1e-3 relative with enough steps, and a run with too few steps warns; black and blurred
 * baselines differ (the blur itself: test/unit/blur.test.ts); real Darknet Tiny.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { integratedGradients } from '../../pipeline/methods/integrated-gradients.ts';
import { artifact, darknetOnChelsea, finiteAndVaried, haveFixtures, linearModel, smoothModel } from '../helpers/attribution-models.ts';
import { maxAbsDiff } from '../helpers/finite-diff.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';
import { vals } from '../helpers/tiny-models.ts';

if (!haveFixtures) console.warn('skipping the Darknet Tiny integrated-gradients test: ../shared/fixtures is absent');

const id = 'integrated-gradients';

describe('integrated-gradients', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('is W * (x - x\') exactly on a linear model (black from the option or from the preprocessing)', async () => {
    const shape: [number, number, number] = [3, 4, 2];
    const W0 = vals(24, 91, 2);
    const W1 = vals(24, 92, 2);
    const model = linearModel(shape, [W0, W1]);
    const xs = [vals(24, 93), vals(24, 94)];
    const input = tf.tensor4d(xs.flat(), [2, ...shape]);
    // black = (0 - mean) / std per channel: preprocessing mean [0.5, -0.25], std [0.25, 0.5] -> [-2, 0.5]
    const preprocessing = { mean: [0.5, -0.25], std: [0.25, 0.5] };
    const cases: { opts: Record<string, unknown>; base: (k: number) => number; pre?: typeof preprocessing }[] = [
      { opts: { steps: 7 }, base: () => 0 },
      { opts: { steps: 3, baselineValue: 0.5 }, base: () => 0.5 },
      { opts: { steps: 5, baselineValue: [-0.25, 0.75] }, base: (k) => (k % 2 === 0 ? -0.25 : 0.75) },
      { opts: { steps: 2 }, base: (k) => (k % 2 === 0 ? -2 : 0.5), pre: preprocessing },
      { opts: { steps: 2, baselineValue: 1 }, base: () => 1, pre: preprocessing },
    ];
    for (const { opts, base, pre } of cases) {
      const ctx = await methodContext(model, input, { targets: [0, 1], preprocessing: pre });
      const arts = await runMethod(integratedGradients, ctx, opts);
      for (const [i, Wt] of [W0, W1].entries()) {
        // + 0 turns -0 into 0 on both sides (toEqual tells them apart)
        const expected = Wt.map((w, k) => w * (xs[i][k] - base(k)) + 0);
        const attr = await readRaw(ctx, artifact(arts, `${id}/s${i}/${i}/attribution`));
        expect(attr.shape).toEqual(shape);
        expect(Array.from(attr.data, (v) => v + 0)).toEqual(expected);
        const heat = artifact(arts, `${id}/s${i}/${i}/heatmap`);
        const signed = await readRaw(ctx, heat);
        expect(Array.from(signed.data, (v) => v + 0)).toEqual(Array.from({ length: 12 }, (_, p) => expected[2 * p] + expected[2 * p + 1]));
        expect(heat.stats?.completenessRelError).toBeLessThan(1e-5);
      }
    }
    input.dispose();
    model.dispose();
  });

  it('is complete (sum A = S(x) - S(x\') within 1e-3) on a smooth net with enough steps, error ~ 1/steps', async () => {
    const model = smoothModel();
    const input = tf.tensor4d([...vals(75, 95, 1.5), ...vals(75, 96, 1.5)], [2, 5, 5, 3]);
    const run = async (steps: number) => {
      const logger = new MemoryLogger();
      const ctx = await methodContext(model, input, { targets: [0, 2], logger });
      const arts = await runMethod(integratedGradients, ctx, { steps });
      return { logger, stats: [0, 2].map((t, i) => artifact(arts, `${id}/s${i}/${t}/heatmap`).stats!) };
    };
    const coarse = await run(100);
    const fine = await run(2000);
    for (const [i, s] of fine.stats.entries()) {
      const delta = (s.scoreInput as number) - (s.scoreBaseline as number);
      expect(Math.abs(delta)).toBeGreaterThan(0.1);
      expect(s.completenessRelError).toBeLessThan(1e-3);
      expect(s.completenessError).toBeCloseTo(Math.abs((s.attributionSum as number) - delta), 9);
      // the right Riemann sum's error falls as 1/steps on a smooth path: 20x the steps, ~1/20 the error
      expect(s.completenessRelError).toBeLessThan((coarse.stats[i].completenessRelError as number) / 10);
    }
    expect(fine.logger.records.filter((r) => r.level === 'warn')).toEqual([]);
    input.dispose();
    model.dispose();
  });

  it('warns when the completeness error exceeds 5% (too few steps)', async () => {
    const model = smoothModel();
    const input = tf.tensor4d(vals(75, 95, 1.5), [1, 5, 5, 3]);
    const logger = new MemoryLogger();
    const ctx = await methodContext(model, input, { targets: [0], logger });
    const arts = await runMethod(integratedGradients, ctx, { steps: 1 });
    expect(artifact(arts, `${id}/s0/0/heatmap`).stats!.completenessRelError).toBeGreaterThan(0.05);
    expect(logger.text()).toMatch(/warn: integrated-gradients: s0\.png: .*% off\); raise methods\.integrated-gradients\.steps \(now 1\)/);
    input.dispose();
    model.dispose();
  });

  it('gives different attributions for black and blurred baselines', async () => {
    const model = smoothModel();
    const input = tf.tensor4d(vals(75, 97, 1.5), [1, 5, 5, 3]);
    const attr = async (opts: Record<string, unknown>) => {
      const ctx = await methodContext(model, input, { targets: [1] });
      const arts = await runMethod(integratedGradients, ctx, { steps: 20, ...opts });
      return { data: (await readRaw(ctx, artifact(arts, `${id}/s0/1/attribution`))).data, stats: artifact(arts, `${id}/s0/1/heatmap`).stats! };
    };
    const black = await attr({ baseline: 'black' });
    const blurred = await attr({ baseline: 'blurred', blurSigma: 1 });
    expect(blurred.stats.baseline).toBe('blurred');
    expect(blurred.stats.scoreBaseline).not.toBeCloseTo(black.stats.scoreBaseline as number, 3);
    expect(maxAbsDiff(black.data, blurred.data)).toBeGreaterThan(1e-2);
    input.dispose();
    model.dispose();
  });

  it('reports a baselineValue with the wrong channel count as an option problem', () => {
    const model = linearModel([2, 2, 3], [vals(12, 1), vals(12, 2)]);
    const opts = integratedGradients.options.parse({ baselineValue: [0, 1] });
    expect(integratedGradients.check!(opts, model)).toEqual([{ key: 'baselineValue', message: expect.stringMatching(/2 values; the model takes 3 channels/) }]);
    expect(integratedGradients.check!(integratedGradients.options.parse({ baselineValue: [0, 1, 2] }), model)).toEqual([]);
    model.dispose();
  });

  it.skipIf(!haveFixtures)('runs on the real Darknet Tiny for chelsea.png (8 steps)', async () => {
    const { model, input, labels } = await darknetOnChelsea();
    const ctx = await methodContext(model, input, { classes: labels });
    const arts = await runMethod(integratedGradients, ctx, { steps: 8 });
    const heat = arts.find((a) => a.id.endsWith('/heatmap'))!;
    expect(heat.className).toBe('Egyptian cat');
    const signed = await readRaw(ctx, heat);
    expect(signed.shape).toEqual([224, 224]);
    expect(finiteAndVaried(signed.data)).toBe(true);
    const attr = await readRaw(ctx, arts.find((a) => a.id.endsWith('/attribution'))!);
    expect(attr.shape).toEqual([224, 224, 3]);
    expect(finiteAndVaried(attr.data)).toBe(true);
    expect(Number.isFinite(heat.stats!.completenessRelError)).toBe(true);
    input.dispose();
    model.dispose();
  }, 120_000);
});
