import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { gradCam } from '../../pipeline/methods/grad-cam.ts';
import { occlusion } from '../../pipeline/methods/occlusion.ts';
import type { MethodContext } from '../../pipeline/methods/types.ts';
import { runMetrics } from '../../pipeline/metrics/run-metrics.ts';
import type { CurveMetric, MetricsJson } from '../../pipeline/metrics/types.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { darknetInput, FIXTURES, haveDarknet, loadDarknet } from '../helpers/darknet.ts';
import { methodContext, runMethod } from '../helpers/method-context.ts';

const PHOTOS = ['chelsea.png', 'coffee.png', 'eagle.jpg'];
const haveFixtures = haveDarknet && PHOTOS.every((p) => existsSync(resolve(FIXTURES, 'photos', p)));
if (!haveFixtures) console.warn(`skipping the Darknet Tiny metrics test: ${FIXTURES} (darknet-tiny and photos) is absent`);

/**
 * Deletion and insertion on the real Darknet Tiny for three photos, at 16 steps (3136 px per
 * step): Grad-CAM and occlusion must rank pixels better than uniform noise, on average.
 */
describe.skipIf(!haveFixtures)('metrics on Darknet Tiny', () => {
  let model: ModelAdapter;
  let input: tf.Tensor4D;
  let ctx: MethodContext;
  let json: MetricsJson;

  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    ({ model } = await loadDarknet());
    const parts = await Promise.all(PHOTOS.map((p) => darknetInput(p)));
    input = tf.concat(parts, 0) as tf.Tensor4D;
    tf.dispose(parts);
    ctx = await methodContext(model, input);
    ctx.settings.batchSize = 16;
    await runMethod(gradCam, ctx);
    await runMethod(occlusion, ctx, { size: 56, stride: 28 });
    const before = tf.memory().numTensors;
    json = (await runMetrics(ctx, {}, { deletion: { steps: 16 }, insertion: { steps: 16 }, randomization: { enabled: false } }))!;
    expect(tf.memory().numTensors).toBe(before);
  }, 300_000);

  afterAll(() => {
    input?.dispose();
    model?.dispose();
  });

  const mean = (c: CurveMetric | undefined, m: string) => c!.mean.find((x) => x.method === m)!.auc;

  // DOES NOT HOLD on this model (measured, 16 steps, removed pixels = the three photos' mean
  // colour): mean deletion AUC Grad-CAM 0.049, occlusion 0.068, random 0.033; per photo (Grad-CAM
  // / occlusion / random) chelsea 0.112 / 0.161 / 0.050, coffee 0.022 / 0.022 / 0.035, eagle
  // 0.013 / 0.021 / 0.013. Removing 6% of the pixels scattered at random (salt noise over the
  // whole photo) drops p(Egyptian cat) from 0.65 to 0.24, while removing the Grad-CAM-ranked 6%
  // (patches of the cat's face) raises it to 0.79; the same holds at 50 steps and with black or
  // gray fills. The metric is implemented as specified; the claim is kept here unweakened as an
  // expected failure, so it stays visible and turns red if it ever starts to hold.
  it.fails('Grad-CAM and occlusion beat the random baseline on deletion (lower AUC) [expected failure, see above]', () => {
    for (const m of ['grad-cam', 'occlusion']) expect(mean(json.deletion, m)).toBeLessThan(mean(json.deletion, 'random'));
  });

  it('uses 3136 px per step and, without a dataset, the samples\' mean colour as the deletion fill', () => {
    expect(json.deletion!.pixelsPerStep).toBe(3136);
    expect(json.deletion!.fractions).toHaveLength(17);
    expect(json.deletion!.fill.source).toBe('samples');
    expect(json.deletion!.fill.input).toHaveLength(3);
  });

  it('Grad-CAM and occlusion beat the random baseline on insertion (higher AUC)', () => {
    for (const m of ['grad-cam', 'occlusion']) expect(mean(json.insertion, m)).toBeGreaterThan(mean(json.insertion, 'random'));
  });

  it('curves start at the image probability (deletion) and end there (insertion)', () => {
    const s0 = json.deletion!.samples[0].methods[0];
    const i0 = json.insertion!.samples[0].methods[0];
    expect(s0.curve[0]).toBeCloseTo(i0.curve.at(-1)!, 5);
    expect(s0.curve[0]).toBeGreaterThan(0.5);
  });

  it('writes metrics.json and a curve chart per sample plus the mean chart', async () => {
    const arts = ctx.out.artifacts.filter((a) => a.method === 'metrics');
    expect(arts.map((a) => a.id)).toEqual(['metrics/metrics', ...ctx.samples.map((s) => `metrics/${s.id}/curves`), 'metrics/mean-curves']);
    const data = JSON.parse(await readFile(join(ctx.out.staging, arts[0].path), 'utf8')) as MetricsJson;
    expect(data.table.map((r) => r.method)).toEqual(['grad-cam', 'occlusion', 'random']);
    const chart = arts[1];
    expect(chart.image).toBe(ctx.samples[0].id);
    const meta = await sharp(join(ctx.out.staging, chart.path)).metadata();
    expect([meta.width, meta.height]).toEqual([chart.width, chart.height]);
  });
});
