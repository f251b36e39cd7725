import * as tf from '@tensorflow/tfjs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { loadDigits } from '../../pipeline/demo/digits.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { gradCam } from '../../pipeline/methods/grad-cam.ts';
import type { MethodDef } from '../../pipeline/methods/types.ts';
import { runMetrics } from '../../pipeline/metrics/run-metrics.ts';
import type { MetricsJson } from '../../pipeline/metrics/types.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { methodContext, runMethod } from '../helpers/method-context.ts';

/**
 * The cascading randomization test on the committed demo CNN (models/demo-mnist), explained as
 * the embedded default report does (Grad-CAM at conv5), on the first eight held-out digits.
 */
describe('randomization on the demo model', () => {
  let model: ModelAdapter;
  let input: tf.Tensor4D;
  let json: MetricsJson;
  let before: Float32Array;
  let after: Float32Array;

  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    ({ adapter: model } = await loadModel(resolve(import.meta.dirname, '../../models/demo-mnist')));
    const { test } = await loadDigits();
    input = tf.tensor4d(test.x.slice(0, 8 * 784), [8, 28, 28, 1]);
    const ctx = await methodContext(model, input);
    await runMethod(gradCam, ctx, { layer: 'conv5' });
    before = tf.tidy(() => Float32Array.from(model.forward(input).logits.dataSync()));
    const methods = [{ def: gradCam as unknown as MethodDef, opts: gradCam.options.parse({ layer: 'conv5' }) }];
    json = (await runMetrics(ctx, { methods }, { deletion: { enabled: false }, insertion: { enabled: false }, pointingGame: { enabled: false }, curves: false, randomization: { maxSteps: 4 } }))!;
    after = tf.tidy(() => Float32Array.from(model.forward(input).logits.dataSync()));
  }, 120_000);

  afterAll(() => {
    input?.dispose();
    model?.dispose();
  });

  it("Grad-CAM's correlation with its original maps falls as the top layers are randomized", () => {
    const r = json.randomization!;
    expect(r.note).toBeUndefined();
    expect(r.steps[0]).toMatchObject({ step: 1, randomized: 1 });
    const g = r.methods.find((m) => m.method === 'grad-cam')!;
    expect(g.samples).toHaveLength(8);
    // measured: -0.02 with only the output layer randomized (the class weights that make
    // Grad-CAM's channel weights are gone), -0.10, -0.12, 0.12 further down: the maps are
    // unrelated to the originals from the first step on
    expect(r.steps.map((s) => s.layer)).toEqual(['predictions', 'conv4', 'conv3', 'conv1']);
    for (const v of g.abs) expect(Math.abs(v!)).toBeLessThan(0.5);
    for (const s of g.samples) expect(s.abs[0]!).toBeLessThan(0.9);
    expect(g.flagged).toBe(false);
    expect(json.flags).toEqual([]);
  });

  it('restores the weights: the predictions afterwards are bit-identical', () => {
    expect(after).toEqual(before);
  });
});
