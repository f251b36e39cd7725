import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { cam, camMaps, findCamHead } from '../../pipeline/methods/cam.ts';
import { gradCamMaps } from '../../pipeline/methods/grad-cam.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { darknetInput, FIXTURES, haveDarknet, loadDarknet } from '../helpers/darknet.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';
import { graph64, graphWeights, t64, writeTinyGraphModel } from '../helpers/tiny-models.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

if (!haveDarknet) console.warn(`skipping the Darknet Tiny CAM test: ${FIXTURES} is absent`);

const seeded = (seed: number) => tf.initializers.glorotUniform({ seed });
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const heatmaps = <T extends { id: string }>(artifacts: T[]) => artifacts.filter((a) => a.id.endsWith('/heatmap'));

/**
 * 4x4x1 input -> 1x1 conv "feat" [1, -1] (A0 = x, A1 = -x) -> GAP -> dropout -> dense "fc"
 * (kernel W [2, 2], bias b) -> softmax layer.
 */
function handModel(W: number[][], b: number[]) {
  const input = tf.input({ shape: [4, 4, 1] });
  const feat = tf.layers.conv2d({ filters: 2, kernelSize: 1, useBias: false, name: 'feat', weights: [tf.tensor4d([1, -1], [1, 1, 1, 2])] }).apply(input) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(feat) as tf.SymbolicTensor;
  const drop = tf.layers.dropout({ rate: 0.5, name: 'drop' }).apply(gap) as tf.SymbolicTensor;
  const fc = tf.layers.dense({ units: 2, name: 'fc', weights: [tf.tensor2d(W), tf.tensor1d(b)] }).apply(drop) as tf.SymbolicTensor;
  const out = tf.layers.softmax({ name: 'probs' }).apply(fc) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

/** 6x6x2 -> conv 3x3 relu "c1" (3 maps) -> 1x1 conv "classes" (4 maps, bias) -> GAP: a NiN/Darknet head. */
function classMapModel() {
  const input = tf.input({ shape: [6, 6, 2] });
  const c1 = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: seeded(11), biasInitializer: 'ones' }).apply(input) as tf.SymbolicTensor;
  const weights = [tf.randomUniform([1, 1, 3, 4], -1, 1, 'float32', 12), tf.tensor1d([0.5, -0.25, 1, -1])];
  const cls = tf.layers.conv2d({ filters: 4, kernelSize: 1, name: 'classes', weights }).apply(c1) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(cls) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: gap }));
}

describe('cam', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('equals ReLU(Grad-CAM) up to the factor 1/(h*w) on a GAP + linear head (random weights, several classes)', async () => {
    const input = tf.input({ shape: [12, 12, 3] });
    const c1 = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: seeded(4) }).apply(input) as tf.SymbolicTensor;
    const c2 = tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'c2', kernelInitializer: seeded(5) }).apply(c1) as tf.SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({}).apply(c2) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 4, activation: 'softmax', name: 'fc', kernelInitializer: seeded(6), biasInitializer: tf.initializers.constant({ value: 0.3 }) }).apply(gap) as tf.SymbolicTensor;
    const model = new LayersAdapter(tf.model({ inputs: input, outputs: out }));
    const x = tf.randomUniform([3, 12, 12, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    const targets = [0, 2, 3];
    const found = findCamHead(model);
    expect(found.ok && found.head.kind).toBe('gap+dense');
    expect(found.ok && found.head.mapLayer).toBe('c2');

    const ctx = await methodContext(model, x, { targets });
    const arts = heatmaps(await runMethod(cam, ctx));
    expect(arts.map((a) => [a.image, a.class, a.layer])).toEqual([['s0', 0, 'c2'], ['s1', 2, 'c2'], ['s2', 3, 'c2']]);
    const grad = gradCamMaps({ model, input: x }, 'c2', targets);
    const gc = (await grad.raw.array()) as number[][][];
    tf.dispose([grad.raw, grad.upsampled]);
    let negatives = 0;
    for (let i = 0; i < 3; i++) {
      const raw = await readRaw(ctx, arts[i]);
      expect(raw.shape).toEqual([6, 6]);
      const camMap = Array.from(raw.data);
      negatives += camMap.filter((v) => v < 0).length;
      const expected = camMap.map((v) => Math.max(0, v) / 36);
      const scale = Math.max(...expected);
      expect(scale).toBeGreaterThan(0);
      gc[i].flat().forEach((v, j) => expect(Math.abs(v - expected[j]) / scale).toBeLessThan(1e-4));
    }
    // CAM is not rectified (Zhou et al.): some values are negative, which Grad-CAM's ReLU removes
    expect(negatives).toBeGreaterThan(0);
    x.dispose();
    model.dispose();
  });

  it('equals the hand-computed map sum_k W[k,c] A_k (no bias) on a hand-weighted model, through dropout and a softmax layer', async () => {
    // A0 = x, A1 = -x; W = [[2, 0.5], [-1, 3]]: CAM_0 = 2x + x = 3x, CAM_1 = 0.5x - 3x = -2.5x
    const model = handModel([[2, 0.5], [-1, 3]], [0.25, -0.5]);
    const xs = [1, -2, 3, -4, 5, -6, 7, -8, 0, 1, 0, -1, 2, 2, -2, -3];
    const input = tf.tensor4d([...xs, ...xs], [2, 4, 4, 1]);
    const ctx = await methodContext(model, input, { targets: [0, 1] });
    const arts = heatmaps(await runMethod(cam, ctx));
    expect(arts).toHaveLength(2);
    const r0 = await readRaw(ctx, arts[0]);
    const r1 = await readRaw(ctx, arts[1]);
    Array.from(r0.data).forEach((v, i) => expect(v).toBeCloseTo(3 * xs[i], 6));
    Array.from(r1.data).forEach((v, i) => expect(v).toBeCloseTo(-2.5 * xs[i], 6));
    // score = mean(CAM_c) + b_c
    const mean = xs.reduce((s, v) => s + v, 0) / 16;
    expect(arts[0].stats?.head).toBe('gap+dense');
    expect(arts[0].stats?.bias).toBeCloseTo(0.25, 6);
    expect(arts[0].stats?.score).toBeCloseTo(3 * mean + 0.25, 5);
    expect(arts[1].stats?.score).toBeCloseTo(-2.5 * mean - 0.5, 5);
    expect(arts[0].title).toBe('CAM for "class 0" at feat');
    input.dispose();
    model.dispose();
  });

  it('is the class map itself, sum_k W[0,0,k,c] A_k + b_c, on a 1x1-conv + GAP head', async () => {
    const model = classMapModel();
    const found = findCamHead(model);
    expect(found.ok && found.head).toMatchObject({ kind: 'class-maps+gap', mapLayer: 'classes', featureLayer: 'c1', poolLayer: 'gap' });
    const x = tf.randomUniform([2, 6, 6, 2], -1, 1, 'float32', 13) as tf.Tensor4D;
    const targets = [1, 3];
    const ctx = await methodContext(model, x, { targets });
    const arts = heatmaps(await runMethod(cam, ctx));
    expect(arts.map((a) => a.layer)).toEqual(['classes', 'classes']);
    expect(arts[0].stats).toMatchObject({ head: 'class-maps+gap', featureLayer: 'c1' });

    const { activations, logits } = model.forward(x, ['c1']);
    const A = (await activations.get('c1')!.array()) as number[][][][];
    const [k, b] = model.weights('classes');
    const K = (await k.array()) as number[][][][];
    const B = (await b.array()) as number[];
    const L = (await logits.array()) as number[][];
    tf.dispose([logits, activations.get('c1')!]);
    for (let i = 0; i < 2; i++) {
      const c = targets[i];
      const raw = Array.from((await readRaw(ctx, arts[i])).data);
      const expected = A[i].flat().map((a) => a.reduce((s, v, kk) => s + v * K[0][0][kk][c], B[c]));
      raw.forEach((v, j) => expect(v).toBeCloseTo(expected[j], 5));
      // the spatial mean of the class map is the score
      expect(raw.reduce((s, v) => s + v, 0) / 36).toBeCloseTo(L[i][c], 5);
    }
    x.dispose();
    model.dispose();
  });

  it('skips an unsupported head with a warning that names the supported heads and grad-cam', async () => {
    const input = tf.input({ shape: [4, 4, 1] });
    const conv = tf.layers.conv2d({ filters: 2, kernelSize: 3, name: 'c1', kernelInitializer: seeded(1) }).apply(input) as tf.SymbolicTensor;
    const flat = tf.layers.flatten({ name: 'flat' }).apply(conv) as tf.SymbolicTensor;
    const fc1 = tf.layers.dense({ units: 3, name: 'fc1', activation: 'relu', kernelInitializer: seeded(2) }).apply(flat) as tf.SymbolicTensor;
    const fc2 = tf.layers.dense({ units: 2, name: 'fc2', kernelInitializer: seeded(3) }).apply(fc1) as tf.SymbolicTensor;
    const model = new LayersAdapter(tf.model({ inputs: input, outputs: fc2 }));
    const found = findCamHead(model);
    expect(found.ok).toBe(false);
    const logger = new MemoryLogger();
    const x = tf.ones([1, 4, 4, 1]) as tf.Tensor4D;
    const ctx = await methodContext(model, x, { logger });
    expect(await runMethod(cam, ctx)).toEqual([]);
    const warning = logger.records.filter((r) => r.level === 'warn').map((r) => r.msg).join('\n');
    expect(warning).toContain('cam: skipped: CAM needs a global-average-pooling head');
    expect(warning).toContain('a convolution to one map per class followed by global average pooling');
    expect(warning).toContain('the dense layer "fc2" is not fed by global average pooling (this model ends in Conv2D "c1" -> Flatten "flat" -> Dense "fc1" -> Dense "fc2")');
    expect(warning).toContain('Use grad-cam instead');
    x.dispose();
    model.dispose();
  });

  it('a dense + sigmoid head (multi-label): CAM of the scores before the sigmoid, mean_ij CAM_c + b_c = logit_c', async () => {
    const input = tf.input({ shape: [4, 4, 1] });
    const conv = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'c1', kernelInitializer: seeded(1) }).apply(input) as tf.SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(conv) as tf.SymbolicTensor;
    const fc = tf.layers.dense({ units: 2, name: 'fc', activation: 'sigmoid', kernelInitializer: seeded(2), biasInitializer: 'ones' }).apply(gap) as tf.SymbolicTensor;
    const model = new LayersAdapter(tf.model({ inputs: input, outputs: fc }));
    expect(model.head.kind).toBe('multi-label');
    const x = tf.randomUniform([1, 4, 4, 1], 1, 3, 'float32', 5) as tf.Tensor4D;
    const ctx = await methodContext(model, x, { targets: [1] });
    const arts = heatmaps(await runMethod(cam, ctx));
    expect(arts).toHaveLength(1);
    const [k, b] = model.weights('fc').map((t) => Array.from(t.dataSync()));
    const a = Array.from(model.forward(x, ['c1']).activations.get('c1')!.dataSync());
    const hand = Array.from({ length: 16 }, (_, p) => a[2 * p] * k[1] + a[2 * p + 1] * k[3]);
    const raw = await readRaw(ctx, arts[0]);
    expect(maxAbs(raw.data, hand)).toBeLessThan(1e-5);
    const logit = tf.tidy(() => model.forward(x).logits.dataSync()[1]);
    expect(hand.reduce((s, v) => s + v, 0) / 16 + b[1]).toBeCloseTo(logit, 5);
    expect(arts[0].stats?.score).toBeCloseTo(logit, 5);
    x.dispose();
    model.dispose();
  });

  it('a binary head (one sigmoid unit): class 1 has CAM_z, class 0 its negative', async () => {
    const input = tf.input({ shape: [4, 4, 1] });
    const conv = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'c1', kernelInitializer: seeded(3) }).apply(input) as tf.SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(conv) as tf.SymbolicTensor;
    const fc = tf.layers.dense({ units: 1, name: 'fc', activation: 'sigmoid', kernelInitializer: seeded(4) }).apply(gap) as tf.SymbolicTensor;
    const model = new LayersAdapter(tf.model({ inputs: input, outputs: fc }));
    expect(model.head.kind).toBe('binary');
    const x = tf.randomUniform([2, 4, 4, 1], 1, 3, 'float32', 6) as tf.Tensor4D;
    const ctx = await methodContext(model, x, { targets: [1, 0] });
    const arts = heatmaps(await runMethod(cam, ctx));
    expect(arts).toHaveLength(2);
    const [k] = model.weights('fc').map((t) => Array.from(t.dataSync()));
    const a = Array.from(model.forward(x, ['c1']).activations.get('c1')!.dataSync());
    for (const [i, sign] of [[0, 1], [1, -1]] as const) {
      const hand = Array.from({ length: 16 }, (_, p) => sign * (a[32 * i + 2 * p] * k[0] + a[32 * i + 2 * p + 1] * k[1]));
      expect(maxAbs((await readRaw(ctx, arts[i])).data, hand)).toBeLessThan(1e-5);
    }
    x.dispose();
    model.dispose();
  });

  it('reads a GraphModel head (Mean -> MatMul -> Softmax): CAM_c = sum_k W[k,c] relu_k', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'convlens-cam-graph-'));
    try {
      const w = graphWeights();
      await writeTinyGraphModel(dir, w);
      const { adapter: model } = await loadModel(dir);
      const found = findCamHead(model);
      expect(found.ok && found.head).toMatchObject({ kind: 'gap+dense', mapLayer: 'relu', poolLayer: 'mean', denseLayer: 'logits' });
      const xs = [0.5, -1, 2, 1.5, -0.25, 1, 0.75, -2, 1, 0.5, 0, -1.5, 2, 1, -0.5, 0.25];
      const x = tf.tensor4d(xs, [1, 4, 4, 1]);
      const ctx = await methodContext(model, x, { targets: [2] });
      const arts = heatmaps(await runMethod(cam, ctx));
      const raw = await readRaw(ctx, arts[0]);
      expect(raw.shape).toEqual([3, 3]);
      const ref = graph64(w, t64(xs, [1, 4, 4, 1]));
      // relu [1, 3, 3, 2], matmul kernel [2, 3] row-major: W[k][c] = matmul[k * 3 + c]
      const expected = Array.from({ length: 9 }, (_, p) => ref.a.data[p * 2] * w.matmul[2] + ref.a.data[p * 2 + 1] * w.matmul[5]);
      Array.from(raw.data).forEach((v, p) => expect(v).toBeCloseTo(expected[p], 5));
      expect(arts[0].stats?.score).toBeCloseTo(ref.logits.data[2], 5);
      x.dispose();
      model.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('checks the target option against the model', () => {
    const model = handModel([[1, 0], [0, 1]], [0, 0]);
    const check = cam.check as (o: unknown, m: typeof model, c?: readonly string[]) => { key: string; message: string }[];
    expect(check(cam.options.parse({ target: 5 }), model)).toEqual([{ key: 'target', message: 'class index 5 is out of range; the model has 2 classes (0-1)' }]);
    expect(check(cam.options.parse({ target: 'dgo' }), model, ['cat', 'dog'])[0].message).toContain('no class "dgo"; nearest: dog');
    expect(check(cam.options.parse({ target: 'dog' }), model, ['cat', 'dog'])).toEqual([]);
    model.dispose();
  });

  it.skipIf(!haveDarknet)('uses the 1x1-conv head of the real Darknet Tiny on chelsea.png', async () => {
    const { model, labels } = await loadDarknet();
    const input = await darknetInput('chelsea.png');
    const found = findCamHead(model);
    expect(found.ok && found.head).toMatchObject({ kind: 'class-maps+gap', mapLayer: 'conv2d_16', featureLayer: 'leaky_re_lu_15', poolLayer: 'global_average_pooling2d_1' });
    expect(model.layer('conv2d_16').conv?.kernel).toEqual([1, 1]);
    const ctx = await methodContext(model, input, { classes: labels });
    const arts = heatmaps(await runMethod(cam, ctx));
    expect(arts).toHaveLength(1);
    expect(arts[0].className).toBe('Egyptian cat');
    expect(arts[0].layer).toBe('conv2d_16');
    const raw = (await readRaw(ctx, arts[0])).data;
    expect(raw.length).toBe(14 * 14);
    expect(raw.every(Number.isFinite)).toBe(true);
    expect(Math.max(...raw)).toBeGreaterThan(Math.min(...raw));
    // the map's spatial mean is the logit of the class
    const check = camMaps(ctx, found.ok ? found.head : (undefined as never), [arts[0].class!]);
    expect(check.check[0].ok).toBe(true);
    expect(raw.reduce((s, v) => s + v, 0) / 196).toBeCloseTo(check.check[0].score, 3);
    check.raw.dispose();
    input.dispose();
    model.dispose();
  });
});
