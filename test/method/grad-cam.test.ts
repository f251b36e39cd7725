import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { gradCamMaps } from '../../pipeline/methods/grad-cam.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';

const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures');
const haveFixtures = existsSync(resolve(FIXTURES, 'darknet-tiny/model.json'));
if (!haveFixtures) console.warn(`skipping the Darknet Tiny Grad-CAM test: ${FIXTURES} is absent`);

/** 4x4x1 input -> 1x1 conv "feat" with kernel [1, -1] (A0 = x, A1 = -x) -> GAP -> dense W (no bias). */
function handModel(W: number[][]) {
  const input = tf.input({ shape: [4, 4, 1] });
  const feat = tf.layers.conv2d({ filters: 2, kernelSize: 1, useBias: false, name: 'feat', weights: [tf.tensor4d([1, -1], [1, 1, 1, 2])] }).apply(input) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(feat) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 2, useBias: false, name: 'logits', weights: [tf.tensor2d(W)] }).apply(gap) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

describe('grad-cam', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('matches the hand-computed map on a hand-weighted model', async () => {
    // y_c = sum_k W[k][c] * mean(A_k); dy_c/dA_k = W[k][c]/16 everywhere, so alpha_k = W[k][c]/16 and
    // L_0 = relu(2/16 * x), L_1 = relu(3/16 * -x).
    const model = handModel([[2, 0], [0, 3]]);
    const xs = [1, -2, 3, -4, 5, -6, 7, -8, 0, 1, 0, -1, 2, 2, -2, -2];
    const input = tf.tensor4d([...xs, ...xs], [2, 4, 4, 1]);
    const before = tf.memory().numTensors;
    const maps = gradCamMaps({ model, input }, 'feat', [0, 1]);
    const raw = (await maps.raw.array()) as number[][][];
    expect(maps.raw.shape).toEqual([2, 4, 4]);
    expect(maps.upsampled.shape).toEqual([2, 4, 4]);
    raw[0].flat().forEach((v, i) => expect(v).toBeCloseTo(Math.max(0, (2 / 16) * xs[i]), 6));
    raw[1].flat().forEach((v, i) => expect(v).toBeCloseTo(Math.max(0, (3 / 16) * -xs[i]), 6));
    tf.dispose([maps.raw, maps.upsampled]);
    expect(tf.memory().numTensors).toBe(before);
    input.dispose();
    model.dispose();
  });

  it('equals CAM up to the scale 1/(h*w) on a GAP + linear head (pre-softmax)', async () => {
    const input = tf.input({ shape: [12, 12, 3] });
    const c1 = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }).apply(input) as tf.SymbolicTensor;
    const c2 = tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'c2', kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) }).apply(c1) as tf.SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({}).apply(c2) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 4, activation: 'softmax', name: 'fc', kernelInitializer: tf.initializers.glorotUniform({ seed: 6 }) }).apply(gap) as tf.SymbolicTensor;
    const model = new LayersAdapter(tf.model({ inputs: input, outputs: out }));
    const x = tf.randomUniform([3, 12, 12, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    const targets = [0, 2, 3];
    const maps = gradCamMaps({ model, input: x }, 'c2', targets);
    const [W] = model.weights('fc');
    const { activations } = model.forward(x, ['c2']);
    const A = activations.get('c2')!;
    // CAM_c = sum_k W[k, c] A_k (Zhou et al. 2016); Grad-CAM = ReLU(CAM_c) / (h*w) here
    const cam = tf.tidy(() => tf.stack(targets.map((c, i) => tf.sum(tf.mul(A.slice([i, 0, 0, 0], [1, -1, -1, -1]).squeeze([0]), W.slice([0, c], [-1, 1]).reshape([5])), 2))));
    const expected = tf.div(tf.relu(cam), 36);
    const diff = tf.max(tf.abs(tf.sub(maps.raw, expected))).dataSync()[0];
    const scale = tf.max(expected).dataSync()[0];
    expect(scale).toBeGreaterThan(0);
    expect(diff / scale).toBeLessThan(1e-4);
    tf.dispose([maps.raw, maps.upsampled, A, cam, expected, x]);
    model.dispose();
  });

  it.skipIf(!haveFixtures)('explains "Egyptian cat" on the real Darknet Tiny for chelsea.png', async () => {
    const { adapter: model } = await loadModel(resolve(FIXTURES, 'darknet-tiny'));
    const labels = readFileSync(resolve(FIXTURES, 'darknet-tiny/labels.txt'), 'utf8').split('\n');
    const { data } = await sharp(resolve(FIXTURES, 'photos/chelsea.png')).removeAlpha().resize(224, 224, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    const input = tf.tensor4d(Float32Array.from(data, (v) => v / 255), [1, 224, 224, 3]);
    const probs = model.probabilities(input);
    const top1 = tf.argMax(probs, 1).dataSync()[0];
    expect(labels[top1]).toBe('Egyptian cat');
    expect(probs.dataSync()[top1]).toBeGreaterThan(0.5);
    const layer = model.lastSpatialLayer().name;
    expect(layer).toBe('leaky_re_lu_15');
    const before = tf.memory().numTensors;
    const maps = gradCamMaps({ model, input }, layer, [top1]);
    expect(maps.raw.shape).toEqual([1, 14, 14]);
    expect(maps.upsampled.shape).toEqual([1, 224, 224]);
    const raw = (await maps.raw.data()) as Float32Array;
    expect(raw.every(Number.isFinite)).toBe(true);
    expect(Math.max(...raw)).toBeGreaterThan(Math.min(...raw));
    // the cat fills the photo's centre; its evidence should not sit on the border ring
    const ring = raw.filter((_, i) => { const r = Math.floor(i / 14); const c = i % 14; return r === 0 || r === 13 || c === 0 || c === 13; });
    const inner = raw.filter((_, i) => { const r = Math.floor(i / 14); const c = i % 14; return r > 2 && r < 11 && c > 2 && c < 11; });
    const mean = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
    expect(mean(inner)).toBeGreaterThan(mean(ring));
    tf.dispose([maps.raw, maps.upsampled]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([probs, input]);
    model.dispose();
  });
});
