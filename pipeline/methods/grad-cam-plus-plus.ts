import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { classScore } from '../model/adapter.ts';
import { spatialLayerProblems, upsampleMaps } from './cam-shared.ts';
import { alphaOption, writeSampleMaps } from './maps.ts';
import { classOptionProblems, oneHotRows, targetOption, resolveTargets } from './targets.ts';
import { defineMethod, type MethodContext } from './types.ts';

/** pytorch-grad-cam's guard against a zero denominator. */
export const GRAD_CAM_PP_EPS = 1e-6;

/**
 * Grad-CAM++ (Chattopadhay et al. 2018, "Grad-CAM++: Improved Visual Explanations for Deep
 * Convolutional Networks"). For the activation A [h, w, K] of a layer and g = dy^c/dA, with y^c
 * the pre-softmax score of class c:
 *   alpha_ij^k = g_ij^k^2 / (2 g_ij^k^2 + (sum_ab A_ab^k) g_ij^k^3 + eps)   (0 where g_ij^k = 0)
 *   w_k        = sum_ij ReLU(g_ij^k) * alpha_ij^k
 *   L^c        = ReLU( sum_k w_k A^k )                                       [h, w]
 * This is the paper's closed form (eq. 19), which assumes the explained score is exp(y^c) so
 * that its 2nd and 3rd derivatives are powers of the first, evaluated, as pytorch-grad-cam's
 * GradCAMPlusPlus does, with the plain logit gradient g (no exp factor) and eps = 1e-6; this
 * follows pytorch-grad-cam exactly, so maps can be compared with it. Then bilinear upsampling
 * (half-pixel centres) and min-max scaling per image. Raw data: L^c at the layer's resolution.
 * Default layer: the last spatial layer (for a NiN/Darknet 1x1-conv head, its input).
 * Where the gradient is constant over positions (a linear head on global average pooling) and
 * g_k (sum A^k) is the same for every channel with g_k > 0, every alpha is the constant
 * 1 / (2 + g_k sum A^k) and L^c is Grad-CAM times h*w / (2 + g_k sum A^k).
 */
export const gradCamPlusPlus = defineMethod({
  id: 'grad-cam-plus-plus',
  title: 'Grad-CAM++',
  paper: 'Chattopadhay et al. 2018, Grad-CAM++: Improved Visual Explanations for Deep Convolutional Networks',
  needs: { gradients: true, spatialLayer: true },
  perSample: true,
  options: z.strictObject({
    enabled: z.boolean().default(true),
    layer: z.string().optional().describe('Layer to explain (default: the last layer with a spatial output)'),
    target: targetOption,
    alpha: alphaOption,
  }),
  check(opts, model, classes?: readonly string[]) {
    return [...spatialLayerProblems(model, 'layer', opts.layer, 'Grad-CAM++'), ...classOptionProblems(model, classes, { target: opts.target })];
  },
  async run(ctx, opts) {
    const layer = opts.layer ?? ctx.model.lastSpatialLayer().name;
    const targets = resolveTargets(ctx, opts.target, 'grad-cam-plus-plus');
    const maps = gradCamPlusPlusMaps(ctx, layer, targets);
    try {
      await writeSampleMaps(ctx, { raw: maps.raw, display: maps.upsampled }, { method: 'grad-cam-plus-plus', title: 'Grad-CAM++', layer, targets, alpha: opts.alpha });
    } finally {
      tf.dispose([maps.raw, maps.upsampled]);
    }
  },
});

/** Grad-CAM++ for every sample: raw [n, h, w] at the layer and upsampled [n, H, W]. */
export function gradCamPlusPlusMaps(ctx: Pick<MethodContext, 'model' | 'input'>, layer: string, targets: readonly number[]) {
  const weights = oneHotRows(targets, ctx.model.numClasses);
  let r: ReturnType<typeof ctx.model.gradient>;
  try {
    r = ctx.model.gradient(ctx.input, classScore(weights), layer);
  } finally {
    weights.dispose();
  }
  try {
    return tf.tidy(() => {
      const g = r.grad as tf.Tensor4D;
      const A = r.value as tf.Tensor4D;
      const g2 = tf.square(g);
      const g3 = tf.mul(g2, g);
      const sumA = tf.sum(A, [1, 2], true);
      const aij = tf.where(tf.notEqual(g, 0), tf.div(g2, tf.add(tf.add(tf.mul(2, g2), tf.mul(sumA, g3)), GRAD_CAM_PP_EPS)), tf.zerosLike(g));
      const w = tf.sum(tf.mul(tf.relu(g), aij), [1, 2], true);
      const raw = tf.relu(tf.sum(tf.mul(w, A), 3)) as tf.Tensor3D;
      const [, H, W] = ctx.input.shape;
      return { raw, upsampled: upsampleMaps(raw, H, W) };
    });
  } finally {
    tf.dispose([r.grad, r.value, r.logits]);
  }
}
