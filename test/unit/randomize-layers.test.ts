/**
 * ModelAdapter.withRandomizedLayers: Keras-default re-initialisation (Glorot-uniform kernels,
 * zero biases, identity batch normalization), seeded per layer, and an exact restore of the
 * original weights afterwards, also when the function throws. GraphModels refuse it.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { initialWeight } from '../../pipeline/model/adapter.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { vals, writeTinyGraphModel } from '../helpers/tiny-models.ts';

/** img [6,6,2] -> c1 conv 3x3 (4) -> bn -> relu -> gap -> fc dense 3 (softmax). */
function model(): LayersAdapter {
  const input = tf.input({ shape: [6, 6, 2] });
  const c1 = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'c1' });
  const bn = tf.layers.batchNormalization({ name: 'bn' });
  const fc = tf.layers.dense({ units: 3, activation: 'softmax', name: 'fc' });
  let h = c1.apply(input) as tf.SymbolicTensor;
  h = bn.apply(h) as tf.SymbolicTensor;
  h = tf.layers.reLU({ name: 'relu' }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as tf.SymbolicTensor;
  const m = tf.model({ inputs: input, outputs: fc.apply(h) as tf.SymbolicTensor });
  c1.setWeights([tf.tensor4d(vals(72, 1, 1), [3, 3, 2, 4]), tf.tensor1d([0.1, -0.2, 0.3, 0])]);
  bn.setWeights([tf.tensor1d([1.5, 0.5, 2, 1]), tf.tensor1d([0.1, 0.2, -0.1, 0]), tf.tensor1d([0.2, -0.1, 0, 0.3]), tf.tensor1d([2, 0.5, 1, 3])]);
  fc.setWeights([tf.tensor2d(vals(12, 2, 1), [4, 3]), tf.tensor1d([0.5, -0.5, 0.25])]);
  return new LayersAdapter(m);
}

const snapshot = (a: LayersAdapter, layers: string[]) => layers.flatMap((l) => a.weights(l).map((w) => Float32Array.from(w.dataSync())));
const logits = (a: LayersAdapter, x: tf.Tensor4D) => tf.tidy(() => Float32Array.from(a.forward(x).logits.dataSync()));

describe('withRandomizedLayers', () => {
  let a: LayersAdapter;
  let x: tf.Tensor4D;
  const all = ['c1', 'bn', 'fc'];
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    a = model();
    x = tf.tensor4d(vals(2 * 72, 3, 1), [2, 6, 6, 2]);
  });
  afterAll(() => { x.dispose(); a.dispose(); });

  it('re-initialises with Keras defaults, changes the predictions, and restores them bit for bit', async () => {
    const before = tf.memory().numTensors;
    const weights = snapshot(a, all);
    const out = logits(a, x);
    const inside = await a.withRandomizedLayers(all, 7, () => {
      const [k, b] = a.weights('c1').map((w) => Array.from(w.dataSync()));
      const limit = Math.sqrt(6 / (3 * 3 * 2 + 3 * 3 * 4));
      expect(Math.max(...k.map(Math.abs))).toBeLessThanOrEqual(limit);
      expect(new Set(k).size).toBe(72);
      expect(b).toEqual([0, 0, 0, 0]);
      const [gamma, beta, mean, variance] = a.weights('bn').map((w) => Array.from(w.dataSync()));
      expect([gamma, beta, mean, variance]).toEqual([[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]);
      const [kd, bd] = a.weights('fc').map((w) => Array.from(w.dataSync()));
      expect(Math.max(...kd.map(Math.abs))).toBeLessThanOrEqual(Math.sqrt(6 / 7));
      expect(bd).toEqual([0, 0, 0]);
      return logits(a, x);
    });
    expect(Array.from(inside)).not.toEqual(Array.from(out));
    expect(logits(a, x)).toEqual(out);
    expect(snapshot(a, all)).toEqual(weights);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('restores the weights when the function throws, and passes the error on', async () => {
    const before = tf.memory().numTensors;
    const out = logits(a, x);
    await expect(a.withRandomizedLayers(['fc'], 1, async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(logits(a, x)).toEqual(out);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('draws depend on (seed, layer) only, so a cascade keeps earlier layers at the same values', async () => {
    const fcAlone = await a.withRandomizedLayers(['fc'], 3, () => snapshot(a, ['fc']));
    const fcInCascade = await a.withRandomizedLayers(['fc', 'bn', 'c1'], 3, () => snapshot(a, ['fc']));
    const otherSeed = await a.withRandomizedLayers(['fc'], 4, () => snapshot(a, ['fc']));
    expect(fcInCascade).toEqual(fcAlone);
    expect(otherSeed[0]).not.toEqual(fcAlone[0]);
    // only the named layers change
    const c1 = snapshot(a, ['c1']);
    expect(await a.withRandomizedLayers(['fc'], 3, () => snapshot(a, ['c1']))).toEqual(c1);
  });

  it('an unknown layer is an error before anything changes', async () => {
    const out = logits(a, x);
    await expect(a.withRandomizedLayers(['fc', 'nope'], 1, () => 0)).rejects.toThrow(/no layer "nope"/);
    expect(logits(a, x)).toEqual(out);
  });

  it('Glorot-uniform kernels have the variance limit^2 / 3', () => {
    const t = initialWeight('dense_1/kernel', [300, 100], 11);
    const v = Array.from(t.dataSync());
    t.dispose();
    const limit = Math.sqrt(6 / 400);
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    const variance = v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length;
    expect(Math.max(...v.map(Math.abs))).toBeLessThanOrEqual(limit);
    expect(Math.abs(mean)).toBeLessThan(0.01 * limit);
    expect(variance / (limit * limit / 3)).toBeGreaterThan(0.97);
    expect(variance / (limit * limit / 3)).toBeLessThan(1.03);
  });
});

describe('GraphAdapter', () => {
  let tmp: string;
  beforeAll(async () => { tmp = await mkdtemp(join(tmpdir(), 'convlens-rand-graph-')); });
  afterAll(async () => { await rm(tmp, { recursive: true, force: true }); });

  it('a layer keeps its draws as the cascade randomizes more layers (see graph-adapter.test.ts for the values)', async () => {
    await writeTinyGraphModel(tmp);
    const { adapter } = await loadModel(tmp);
    const read = () => Array.from(adapter.weights('logits')[0].dataSync());
    const original = read();
    const alone = await adapter.withRandomizedLayers(['logits'], 3, read);
    const cascade = await adapter.withRandomizedLayers(['logits', 'bias_add', 'conv'], 3, read);
    const otherSeed = await adapter.withRandomizedLayers(['logits'], 4, read);
    expect(alone).not.toEqual(original);
    expect(cascade).toEqual(alone);
    expect(otherSeed).not.toEqual(alone);
    expect(read()).toEqual(original);
    adapter.dispose();
  });
});
