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
import { methodContext, runMethod, type TestContext } from '../helpers/method-context.ts';

const PHOTOS = ['chelsea.png', 'coffee.png', 'eagle.jpg'];
const haveFixtures = haveDarknet && PHOTOS.every((p) => existsSync(resolve(FIXTURES, 'photos', p)));
if (!haveFixtures) console.warn(`skipping the Darknet Tiny metrics test: ${FIXTURES} (darknet-tiny and photos) is absent`);

/**
 * Deletion and insertion on the real Darknet Tiny for three photos, at 16 steps (3136 px per
 * step): Grad-CAM and occlusion must rank pixels better than uniform noise on their own grid, on
 * average.
 */
describe.skipIf(!haveFixtures)('metrics on Darknet Tiny', () => {
  let model: ModelAdapter;
  let input: tf.Tensor4D;
  let ctx: TestContext;
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

  // Each map is compared with noise on its own grid (Grad-CAM: the 14x14 layer; occlusion: its
  // 8x8 stride cells). Against per-pixel noise the deletion claim does not hold on this model
  // (measured, 16 steps: Grad-CAM 0.049, occlusion 0.068, per-pixel noise 0.033 mean AUC here;
  // over all 12 photos 0.028 / 0.035 / 0.027): scattered mean-coloured pixels destroy the
  // prediction faster than removing any contiguous region, so per-pixel noise scores the removal
  // pattern, not a ranking. The same noise on the 14x14 grid gave 0.086 / 0.057 / 0.069 for seeds
  // 0 / 1 / 2, and on a 7x7 grid 0.142 / 0.174 / 0.166.
  it('Grad-CAM and occlusion beat the random baseline of their grid on deletion (lower AUC)', () => {
    expect(json.methods.filter((m) => !m.baseline).map((m) => [m.id, m.against])).toEqual([['grad-cam', 'random-14x14'], ['occlusion', 'random-8x8']]);
    for (const m of ['grad-cam', 'occlusion']) {
      const against = json.methods.find((x) => x.id === m)!.against!;
      expect(mean(json.deletion, m)).toBeLessThan(mean(json.deletion, against));
      expect(json.table.find((r) => r.method === m)!.beats!.deletion).toBe(true);
    }
  });

  it('uses 3136 px per step and, without a dataset, the samples\' mean colour as the deletion fill', () => {
    expect(json.deletion!.pixelsPerStep).toBe(3136);
    expect(json.deletion!.fractions).toHaveLength(17);
    expect(json.deletion!.fill.source).toBe('samples');
    expect(json.deletion!.fill.input).toHaveLength(3);
  });

  it('Grad-CAM and occlusion beat the random baseline of their grid on insertion (higher AUC)', () => {
    for (const m of ['grad-cam', 'occlusion']) {
      expect(mean(json.insertion, m)).toBeGreaterThan(mean(json.insertion, json.methods.find((x) => x.id === m)!.against!));
      expect(json.table.find((r) => r.method === m)!.beats!.insertion).toBe(true);
    }
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
    expect(data.table.map((r) => r.method)).toEqual(['grad-cam', 'occlusion', 'random-14x14', 'random-8x8']);
    const chart = arts[1];
    expect(chart.image).toBe(ctx.samples[0].id);
    const meta = await sharp(join(ctx.out.staging, chart.path)).metadata();
    expect([meta.width, meta.height]).toEqual([chart.width, chart.height]);
  });
});
