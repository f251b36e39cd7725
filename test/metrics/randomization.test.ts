import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { gradCam } from '../../pipeline/methods/grad-cam.ts';
import { defineMethod, methodPasses, type MethodDef } from '../../pipeline/methods/types.ts';
import { metricsTableMarkdown, skippedText } from '../../pipeline/metrics/table.ts';
import { z } from 'zod';
import { averageRanks, cascadeCounts, spearman, weightedLayersTopDown } from '../../pipeline/metrics/randomization.ts';
import { runMetrics } from '../../pipeline/metrics/run-metrics.ts';
import type { MetricsJson } from '../../pipeline/metrics/types.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { methodContext, runMethod } from '../helpers/method-context.ts';
import { inputEcho, layerEcho, writeMaps } from '../helpers/metrics.ts';
import { buildDag, DAG_INPUT, vals, writeTinyGraphModel } from '../helpers/tiny-models.ts';

const off = { deletion: { enabled: false }, insertion: { enabled: false }, pointingGame: { enabled: false }, curves: false } as const;

describe('Spearman and the cascade', () => {
  it('averages ranks over ties', () => {
    expect(Array.from(averageRanks([3, 1, 3, 2]))).toEqual([3.5, 1, 3.5, 2]);
    expect(Array.from(averageRanks([5, 5, 5]))).toEqual([2, 2, 2]);
  });

  it('rho matches 1 - 6 sum d^2 / (n (n^2 - 1)) without ties, and the Pearson of ranks with ties', () => {
    // d = [0, 1, 1, 0]: 1 - 6 * 2 / (4 * 15) = 0.8
    expect(spearman([1, 2, 3, 4], [10, 30, 20, 40])).toBeCloseTo(0.8, 12);
    expect(spearman([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1, 12);
    // ranks a = [1, 2.5, 2.5, 4], b = [1, 2, 3, 4]: cov 2.5, var_a 4.5, var_b 5 -> 2.5 / sqrt(22.5)... as sums:
    // sum xy = 4.5, sum xx = 4.5, sum yy = 5 -> 4.5 / sqrt(22.5)
    expect(spearman([0, 1, 1, 2], [0, 1, 2, 3])).toBeCloseTo(4.5 / Math.sqrt(22.5), 12);
    expect(spearman([1, 1, 1], [1, 2, 3])).toBe(0);
  });

  it('spaces cascade points evenly from the output layer to all layers', () => {
    expect(cascadeCounts(31, 6)).toEqual([1, 7, 13, 19, 25, 31]);
    expect(cascadeCounts(3, 6)).toEqual([1, 2, 3]);
    expect(cascadeCounts(5, 1)).toEqual([5]);
    expect(cascadeCounts(0, 4)).toEqual([]);
  });
});

/** 12x12 images, class 0: a horizontal bar of 4 pixels, class 1: a vertical one, on faint noise. */
function bars(n: number, seed: number) {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const S = 12;
  const xs = new Float32Array(n * S * S);
  const ys = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const cls = i % 2;
    for (let p = 0; p < S * S; p++) xs[i * S * S + p] = rnd() * 0.2;
    const r = Math.floor(rnd() * (cls ? S - 4 : S));
    const c = Math.floor(rnd() * (cls ? S : S - 4));
    for (let k = 0; k < 4; k++) xs[i * S * S + (cls ? r + k : r) * S + (cls ? c : c + k)] = 1;
    ys[i * 2 + cls] = 1;
  }
  return { x: tf.tensor4d(xs, [n, S, S, 1]), y: tf.tensor2d(ys, [n, 2]) };
}

describe('model-parameter randomization on a small trained CNN', () => {
  let model: LayersAdapter;
  let json: MetricsJson;
  let logger: MemoryLogger;
  let accuracy: number;
  let before: Float32Array;
  let after: Float32Array;
  let leaked: number;

  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const net = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: init(1) }),
        tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2', kernelInitializer: init(2) }),
        tf.layers.globalAveragePooling2d({ name: 'gap' }),
        tf.layers.dense({ units: 2, name: 'fc', kernelInitializer: init(3) }),
      ],
    });
    const train = bars(192, 1);
    net.compile({ optimizer: tf.train.adam(0.02), loss: tf.losses.softmaxCrossEntropy });
    await net.fit(train.x, train.y, { epochs: 2, batchSize: 32, shuffle: false, verbose: 0 });
    tf.dispose([train.x, train.y]);
    model = new LayersAdapter(net);
    const test = bars(6, 9);
    accuracy = tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(model.forward(test.x).logits, 1), tf.argMax(test.y, 1)), 'float32')).dataSync()[0]);
    const ctx = await methodContext(model, test.x);
    logger = ctx.logger as MemoryLogger;
    await runMethod(gradCam, ctx, { layer: 'c2' });
    await runMethod(inputEcho, ctx);
    await runMethod(layerEcho, ctx);
    before = tf.tidy(() => Float32Array.from(model.forward(test.x).logits.dataSync()));
    const methods = [
      { def: gradCam as unknown as MethodDef, opts: gradCam.options.parse({ layer: 'c2' }) },
      { def: inputEcho as unknown as MethodDef, opts: inputEcho.options.parse({}) },
      { def: layerEcho as unknown as MethodDef, opts: layerEcho.options.parse({}) },
    ];
    const tensors = tf.memory().numTensors;
    json = (await runMetrics(ctx, { methods }, { ...off, randomization: { maxSteps: 3, seed: 5 } }))!;
    leaked = tf.memory().numTensors - tensors;
    after = tf.tidy(() => Float32Array.from(model.forward(test.x).logits.dataSync()));
    tf.dispose([test.x, test.y]);
  }, 120_000);

  afterAll(() => model?.dispose());

  it('the model learned the task (precondition)', () => {
    expect(accuracy).toBeGreaterThanOrEqual(5 / 6);
  });

  it('cascades over the weighted layers from the top', () => {
    expect(weightedLayersTopDown(model)).toEqual(['fc', 'c2', 'c1']);
    expect(json.randomization!.steps).toEqual([
      { step: 1, layer: 'fc', randomized: 1 },
      { step: 2, layer: 'c2', randomized: 2 },
      { step: 3, layer: 'c1', randomized: 3 },
    ]);
  });

  it("Grad-CAM's maps decorrelate from the original once the top layers are randomized", () => {
    const g = json.randomization!.methods.find((m) => m.method === 'grad-cam')!;
    expect(g.abs).toHaveLength(3);
    expect(g.samples).toHaveLength(6);
    expect(g.final).not.toBeNull();
    expect(g.final!).toBeLessThan(0.5);
    expect(Math.max(...g.abs.map((v) => v ?? 1))).toBeLessThan(0.9);
    expect(g.flagged).toBe(false);
    expect(g.insensitiveUpTo).toBe(0);
    expect(json.flags.some((f) => f.method === 'grad-cam')).toBe(false);
  });

  it('maps that depend only on the first layer stay put until it is randomized, and get a warning', () => {
    const l = json.randomization!.methods.find((m) => m.method === 'layer-echo')!;
    expect(l.abs.slice(0, 2)).toEqual([1, 1]);
    expect(l.abs[2]!).toBeLessThan(0.5);
    expect(l.flagged).toBe(false);
    expect(l.insensitiveUpTo).toBe(2);
    const flag = json.flags.find((f) => f.method === 'layer-echo')!;
    expect(flag.severity).toBe('warn');
    expect(flag.message).toMatch(/top 2 of 3 weighted layers/);
    expect(json.table.find((r) => r.method === 'layer-echo')!.warned).toBe(true);
  });

  it('maps that ignore the model keep correlation 1 and are flagged, in the JSON, the table and the log', () => {
    const e = json.randomization!.methods.find((m) => m.method === 'input-echo')!;
    expect(e.abs).toEqual([1, 1, 1]);
    expect(e.signed).toEqual([1, 1, 1]);
    expect(e.flagged).toBe(true);
    expect(e.insensitiveUpTo).toBe(3);
    expect(json.flags.filter((f) => f.severity === 'fail').map((f) => f.method)).toEqual(['input-echo']);
    expect(json.table.find((r) => r.method === 'input-echo')!.flagged).toBe(true);
    expect(json.table.find((r) => r.method === 'grad-cam')!.best).toContain('randomization');
    expect(logger.records.some((r) => r.level === 'warn' && /Input echo fails the randomization sanity check/.test(r.msg))).toBe(true);
  });

  it('restores the weights exactly and leaks no tensors', () => {
    expect(after).toEqual(before);
    expect(leaked).toBe(0);
  });
});

describe('randomization on a GraphModel', () => {
  let tmp: string;
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    tmp = await mkdtemp(join(tmpdir(), 'convlens-rand-graph-'));
  });
  afterAll(async () => { await rm(tmp, { recursive: true, force: true }); });

  it('cascades through the graph nodes from the top and restores the weights', async () => {
    await writeTinyGraphModel(tmp);
    const { adapter } = await loadModel(tmp);
    const x = tf.tensor4d(Float32Array.from({ length: 32 }, (_, i) => ((i * 7) % 16) / 16), [2, 4, 4, 1]);
    const ctx = await methodContext(adapter, x);
    await runMethod(inputEcho, ctx);
    await runMethod(gradCam, ctx, { layer: 'relu' });
    const before = tf.tidy(() => Float32Array.from(adapter.forward(x).logits.dataSync()));
    const methods = [
      { def: inputEcho as unknown as MethodDef, opts: inputEcho.options.parse({}) },
      { def: gradCam as unknown as MethodDef, opts: gradCam.options.parse({ layer: 'relu' }) },
    ];
    const tensors = tf.memory().numTensors;
    const json = (await runMetrics(ctx, { methods }, { curves: false, insertion: { enabled: false }, deletion: { pixelsPerStep: 4, fill: 0 } }))!;
    expect(tf.memory().numTensors).toBe(tensors);
    const r = json.randomization!;
    expect(r.note).toBeUndefined();
    expect(r.layers).toEqual(['logits', 'bias_add', 'conv']);
    expect(r.steps.map((s) => s.layer)).toEqual(['logits', 'bias_add', 'conv']);
    const echo = r.methods.find((m) => m.method === 'input-echo')!;
    expect(echo.abs).toEqual([1, 1, 1]);
    expect(echo.flagged).toBe(true);
    const cam = r.methods.find((m) => m.method === 'grad-cam')!;
    // the rerun maps differ from the originals at every point (here the randomized class weights
    // leave Grad-CAM's 3x3 maps constant, which counts as rho 0)
    expect(cam.abs.every((v) => v !== null && v < 0.5)).toBe(true);
    expect(cam.flagged).toBe(false);
    expect(json.deletion!.samples[0].methods.map((m) => m.method)).toEqual(['input-echo', 'grad-cam', 'random', 'random-3x3']);
    expect(tf.tidy(() => Float32Array.from(adapter.forward(x).logits.dataSync()))).toEqual(before);
    x.dispose();
    adapter.dispose();
  });
});

describe('randomization cost: which methods are rerun', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  /** A map method declaring `n` passes per sample (its maps: the input echoed). */
  const costly = defineMethod({
    id: 'costly',
    title: 'Costly echo',
    needs: {},
    options: z.strictObject({ enabled: z.boolean().default(true), n: z.number().int().default(20) }),
    passes: (o) => o.n,
    async run(ctx) {
      const [, H, W] = ctx.input.shape;
      const data = tf.tidy(() => tf.sum(ctx.input, 3).dataSync());
      await writeMaps(ctx, 'costly', ctx.samples.map((_, i) => data.slice(i * H * W, (i + 1) * H * W)), [H, W], ctx.samples.map((s) => s.target));
    },
  });

  async function run(randomization: Record<string, unknown>) {
    const model = new LayersAdapter(buildDag());
    const x = tf.tensor4d(vals(32, 3, 1), [2, ...DAG_INPUT]);
    const ctx = await methodContext(model, x);
    await runMethod(inputEcho, ctx);
    await runMethod(costly, ctx);
    const methods = [
      { def: inputEcho as unknown as MethodDef, opts: inputEcho.options.parse({}) },
      { def: costly as unknown as MethodDef, opts: costly.options.parse({}) },
    ];
    const json = (await runMetrics(ctx, { methods }, { ...off, randomization: { maxSteps: 2, ...randomization } }))!;
    x.dispose();
    model.dispose();
    return { json, logger: ctx.logger as MemoryLogger };
  }

  it('by default leaves out methods above maxPasses, says so in the log and the JSON, and tests the rest', async () => {
    expect(methodPasses(costly as unknown as MethodDef, { n: 20 }, [4, 4])).toBe(20);
    expect(methodPasses(inputEcho as unknown as MethodDef, {}, [4, 4])).toBe(1);
    const { json, logger } = await run({});
    expect(json.randomization!.methods.map((m) => m.method)).toEqual(['input-echo']);
    expect(json.randomization!.skipped).toEqual([{ method: 'costly', passes: 20 }]);
    expect(json.table.find((r) => r.method === 'costly')!.randomization).toBeNull();
    expect(logger.records.some((r) => r.level === 'info' && /leaves out costly \(20 passes per sample\).*maxPasses = 8.*metrics\.randomization\.methods/.test(r.msg))).toBe(true);
    expect(skippedText(json)).toBe('Not rerun in the randomization test, for their cost (model passes per sample, at every cascade point): Costly echo (20); list them in metrics.randomization.methods to test them.');
    expect(metricsTableMarkdown(json)).toContain('Not rerun in the randomization test');
  });

  it('reruns them when maxPasses allows it or when they are listed', async () => {
    const wide = (await run({ maxPasses: 20 })).json.randomization!;
    expect(wide.methods.map((m) => m.method)).toEqual(['input-echo', 'costly']);
    expect(wide.skipped).toBeUndefined();
    const listed = (await run({ methods: ['costly'] })).json.randomization!;
    expect(listed.methods.map((m) => m.method)).toEqual(['costly']);
    expect(listed.methods[0].flagged).toBe(true);
    expect(listed.skipped).toBeUndefined();
  });
});
