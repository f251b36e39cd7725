import * as tf from '@tensorflow/tfjs';
import type { ModelAdapter } from '../model/adapter.ts';
import { headProbabilities } from '../model/head.ts';

/** Class scores and named activations of a batch, as flat arrays with their shapes. */
export interface ForwardResult {
  logits: Float32Array;
  probs: Float32Array;
  activations: { name: string; data: Float32Array; shape: number[] }[];
}

/** A forward pass of a batch: scores, probabilities (by the head) and the named activations. */
export function forwardArrays(model: Pick<ModelAdapter, 'forward' | 'head'>, images: Float32Array, shape: [number, number, number, number], layers: readonly string[]): ForwardResult {
  return tf.tidy(() => {
    const x = tf.tensor4d(images, shape);
    const { logits, activations } = model.forward(x, layers);
    const probs = headProbabilities(model.head, logits);
    return {
      logits: logits.dataSync() as Float32Array,
      probs: probs.dataSync() as Float32Array,
      activations: layers.map((name) => {
        const a = activations.get(name)!;
        return { name, data: a.dataSync() as Float32Array, shape: a.shape };
      }),
    };
  });
}

