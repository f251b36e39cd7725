import * as tf from '@tensorflow/tfjs';
import { classScore, type ModelAdapter } from '../model/adapter.ts';
import { upsampleBilinear } from '../render.ts';
import { layerProblem, type MethodContext, type OptionProblem } from './types.ts';

/*
 * Steps shared by cam, grad-cam-plus-plus, guided-grad-cam and contrastive-grad-cam.
 * `weightedGradCamMaps` generalises grad-cam.ts's `gradCamMaps` from one-hot class rows to any
 * objective weights (gradCamMaps(ctx, layer, t) = weightedGradCamMaps(ctx, layer, oneHot(t))).
 */

/** Maps [n, h, w] to [n, H, W] by bilinear resizing with half-pixel centres (render.ts). */
export function upsampleMaps(raw: tf.Tensor3D, height: number, width: number): tf.Tensor3D {
  return tf.tidy(() => tf.squeeze(upsampleBilinear(tf.expandDims(raw, 3) as tf.Tensor4D, height, width), [3]) as tf.Tensor3D);
}

/**
 * Grad-CAM of the objective sum_i sum_c weights[i, c] * y_i^c (y: pre-softmax scores):
 * alpha_k = mean_ij dS/dA_ij^k, L = ReLU(sum_k alpha_k A^k). Raw [n, h, w] and upsampled [n, H, W].
 */
export function weightedGradCamMaps(ctx: Pick<MethodContext, 'model' | 'input'>, layer: string, weights: tf.Tensor2D) {
  const r = ctx.model.gradient(ctx.input, classScore(weights), layer);
  try {
    return tf.tidy(() => {
      const alpha = tf.mean(r.grad, [1, 2], true);
      const raw = tf.relu(tf.sum(tf.mul(alpha, r.value), 3)) as tf.Tensor3D;
      const [, H, W] = ctx.input.shape;
      return { raw, upsampled: upsampleMaps(raw, H, W) };
    });
  } finally {
    tf.dispose([r.grad, r.value, r.logits]);
  }
}

/** The `layer` option must name a layer with a spatial output [batch, h, w, c]. */
export function spatialLayerProblems(model: ModelAdapter, key: string, name: string | undefined, method: string): OptionProblem[] {
  const problems = layerProblem(model, key, name);
  if (problems.length === 0 && name !== undefined && model.layer(name).outputShape.length !== 4) {
    problems.push({ key, message: `layer "${name}" has output shape [${model.layer(name).outputShape.map((d) => d ?? 'null').join(', ')}]; ${method} needs a spatial layer [batch, height, width, channels]; nearest spatial: ${model.lastSpatialLayer().name}` });
  }
  return problems;
}
