import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { classScore } from '../model/adapter.ts';
import { upsampleBilinear } from '../render.ts';
import { writeSampleMaps } from './maps.ts';
import { resolveTarget, targetOption, targetProblem } from './targets.ts';
import { defineMethod, layerProblem, type MethodContext } from './types.ts';

/**
 * Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
 * Gradient-based Localization"). For the activation A [h, w, K] of a layer and the pre-softmax
 * score y^c of class c:
 *   alpha_k^c = (1 / hw) * sum_ij dy^c / dA_ij^k
 *   L^c       = ReLU( sum_k alpha_k^c * A^k )                       [h, w]
 * then bilinear upsampling to the input size (half-pixel centres) and min-max scaling to
 * [0, 1] per image, as pytorch-grad-cam does. Raw data: L^c at the layer's resolution, before
 * upsampling and scaling. Default layer: the last spatial layer (for a NiN/Darknet 1x1-conv
 * head, its input).
 */
export const gradCam = defineMethod({
  id: 'grad-cam',
  title: 'Grad-CAM',
  paper: 'Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization',
  needs: { gradients: true },
  options: z.strictObject({
    enabled: z.boolean().default(true),
    layer: z.string().optional().describe('Layer to explain (default: the last layer with a spatial output)'),
    target: targetOption,
    alpha: z.number().min(0).max(1).default(0.5).describe('Heatmap opacity in the overlay'),
  }),
  check(opts, model) {
    const problems = layerProblem(model, 'layer', opts.layer);
    if (problems.length === 0 && opts.layer !== undefined && model.layer(opts.layer).outputShape.length !== 4) {
      problems.push({ key: 'layer', message: `layer "${opts.layer}" has output shape [${model.layer(opts.layer).outputShape.join(', ')}]; Grad-CAM needs a spatial layer [batch, height, width, channels]; nearest spatial: ${model.lastSpatialLayer().name}` });
    }
    return problems;
  },
  async run(ctx, opts) {
    const layer = opts.layer ?? ctx.model.lastSpatialLayer().name;
    const targets = ctx.samples.map((s) => resolveTarget(opts.target, s, ctx.classes));
    const maps = gradCamMaps(ctx, layer, targets);
    try {
      await writeSampleMaps(ctx, { raw: maps.raw, display: maps.upsampled }, { method: 'grad-cam', title: 'Grad-CAM', layer, targets, alpha: opts.alpha });
    } finally {
      tf.dispose([maps.raw, maps.upsampled]);
    }
  },
});

/** L^c for every sample: raw [n, h, w] at the layer and upsampled + scaled [n, H, W]. */
export function gradCamMaps(ctx: Pick<MethodContext, 'model' | 'input'>, layer: string, targets: number[]) {
  const weights = tf.tidy(() => tf.oneHot(targets, ctx.model.numClasses).toFloat() as tf.Tensor2D);
  const r = ctx.model.gradient(ctx.input, classScore(weights), layer);
  weights.dispose();
  try {
    return tf.tidy(() => {
      const alpha = tf.mean(r.grad, [1, 2], true);
      const raw = tf.relu(tf.sum(tf.mul(alpha, r.value), 3)) as tf.Tensor3D;
      const [, H, W] = ctx.input.shape;
      const upsampled = tf.squeeze(upsampleBilinear(tf.expandDims(raw, 3) as tf.Tensor4D, H, W), [3]) as tf.Tensor3D;
      return { raw, upsampled };
    });
  } finally {
    tf.dispose([r.grad, r.value, r.logits]);
  }
}
