import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { alphaOption, writeSampleMaps } from './maps.ts';
import { spatialLayerProblems, weightedGradCamMaps } from './cam-shared.ts';
import { classOptionProblems, oneHotRows, targetOption, resolveTargets } from './targets.ts';
import { defineMethod, type MethodContext } from './types.ts';

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
  needs: { gradients: true, spatialLayer: true },
  perSample: true,
  options: z.strictObject({
    enabled: z.boolean().default(true),
    layer: z.string().optional().describe('Layer to explain (default: the last layer with a spatial output)'),
    target: targetOption,
    alpha: alphaOption,
  }),
  check(opts, model, classes) {
    return [...spatialLayerProblems(model, 'layer', opts.layer, 'Grad-CAM'), ...classOptionProblems(model, classes, { target: opts.target })];
  },
  async run(ctx, opts) {
    const layer = opts.layer ?? ctx.model.lastSpatialLayer().name;
    const targets = resolveTargets(ctx, opts.target, 'grad-cam');
    const maps = gradCamMaps(ctx, layer, targets);
    try {
      await writeSampleMaps(ctx, { raw: maps.raw, display: maps.upsampled }, { method: 'grad-cam', title: 'Grad-CAM', layer, targets, alpha: opts.alpha });
    } finally {
      tf.dispose([maps.raw, maps.upsampled]);
    }
  },
});

/** L^c for every sample: raw [n, h, w] at the layer and upsampled + scaled [n, H, W]. */
export function gradCamMaps(ctx: Pick<MethodContext, 'model' | 'input'>, layer: string, targets: readonly number[]) {
  const weights = oneHotRows(targets, ctx.model.numClasses);
  try {
    return weightedGradCamMaps(ctx, layer, weights);
  } finally {
    weights.dispose();
  }
}
