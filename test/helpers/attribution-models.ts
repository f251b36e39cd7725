/**
 * Models and inputs for the input-attribution method tests (saliency, SmoothGrad, deconvnet,
 * guided backpropagation, integrated gradients): a linear model with a hand-set weight tensor,
 * a small smooth (tanh) conv net, and the real Darknet Tiny on chelsea.png when the shared
 * fixtures are present.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Artifact } from '../../pipeline/manifest.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { darknetInput, FIXTURES, haveDarknet, loadDarknet } from './darknet.ts';
import { vals } from './tiny-models.ts';

export const haveFixtures = haveDarknet && existsSync(resolve(FIXTURES, 'photos/chelsea.png'));

/**
 * y_k = sum(W_k * x) for k = 0..K-1, W_k [h, w, c] given flat in HWC order: input -> flatten ->
 * dense (no bias, kernel column k = W_k). dy_k/dx = W_k everywhere.
 */
export function linearModel(shape: [number, number, number], Ws: number[][]): LayersAdapter {
  const n = shape[0] * shape[1] * shape[2];
  const input = tf.input({ shape });
  const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: Ws.length, useBias: false, name: 'out' });
  const model = tf.model({ inputs: input, outputs: dense.apply(flat) as tf.SymbolicTensor });
  const kernel = new Float32Array(n * Ws.length);
  Ws.forEach((w, k) => w.forEach((v, i) => { kernel[i * Ws.length + k] = v; }));
  dense.setWeights([tf.tensor2d(kernel, [n, Ws.length])]);
  return new LayersAdapter(model);
}

/**
 * A smooth nonlinear net on [5, 5, 3]: conv 3x3 same (4, tanh) -> conv 3x3 stride 2 (3, tanh) ->
 * flatten -> dense 3 with a softmax (the adapter explains the logits before it).
 */
export function smoothModel(): LayersAdapter {
  const input = tf.input({ shape: [5, 5, 3] });
  const c1 = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'tanh', name: 'c1' });
  const c2 = tf.layers.conv2d({ filters: 3, kernelSize: 3, strides: 2, padding: 'same', activation: 'tanh', name: 'c2' });
  const fc = tf.layers.dense({ units: 3, activation: 'softmax', name: 'fc' });
  const h1 = c1.apply(input) as tf.SymbolicTensor;
  const h2 = c2.apply(h1) as tf.SymbolicTensor;
  const out = fc.apply(tf.layers.flatten().apply(h2) as tf.SymbolicTensor) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  c1.setWeights([tf.tensor4d(vals(3 * 3 * 3 * 4, 31, 0.6), [3, 3, 3, 4]), tf.tensor1d([0.1, -0.1, 0.05, 0])]);
  c2.setWeights([tf.tensor4d(vals(3 * 3 * 4 * 3, 32, 0.5), [3, 3, 4, 3]), tf.tensor1d([0, 0.1, -0.05])]);
  fc.setWeights([tf.tensor2d(vals(27 * 3, 33, 1), [27, 3]), tf.tensor1d([0.2, -0.1, 0])]);
  return new LayersAdapter(model);
}

/** The pre-softmax score of `target` for one image given as a flat array (float32 forward). */
export function scoreOf(model: ModelAdapter, x: ArrayLike<number>, target: number): number {
  return tf.tidy(() => {
    const { logits } = model.forward(tf.tensor4d(Float32Array.from(x), [1, ...model.inputShape]));
    return logits.dataSync()[target];
  });
}

/** Darknet Tiny, chelsea.png as its input [1, 224, 224, 3] in [0, 1], and the labels. */
export async function darknetOnChelsea(): Promise<{ model: ModelAdapter; input: tf.Tensor4D; labels: string[] }> {
  const { model, labels } = await loadDarknet();
  return { model, input: await darknetInput('chelsea.png'), labels };
}

/** The artifact with this id (fails loudly when absent). */
export function artifact(artifacts: readonly Artifact[], id: string): Artifact {
  const a = artifacts.find((x) => x.id === id);
  if (!a) throw new Error(`no artifact ${id}; have ${artifacts.map((x) => x.id).join(', ')}`);
  return a;
}

/** Finite, and not one constant value. */
export function finiteAndVaried(data: ArrayLike<number>): boolean {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) return false;
    min = Math.min(min, data[i]);
    max = Math.max(max, data[i]);
  }
  return max > min;
}
