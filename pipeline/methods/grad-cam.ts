import * as tf from '@tensorflow/tfjs';
import { classCamMaps, defineCamMethod, type ChannelWeights } from './cam-base.ts';
import type { MethodContext } from './types.ts';

/**
 * Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
 * Gradient-based Localization"). For the activation A [h, w, K] of a layer and the pre-softmax
 * score y^c of class c:
 *   alpha_k^c = (1 / hw) * sum_ij dy^c / dA_ij^k
 *   L^c       = ReLU( sum_k alpha_k^c * A^k )                       [h, w]
 * then bilinear upsampling to the input size (half-pixel centres) and min-max scaling to
 * [0, 1] per image, as pytorch-grad-cam does. Raw data: L^c at the layer's resolution, before
 * upsampling and scaling. Default layer: the last spatial layer (for a NiN/Darknet 1x1-conv
 * head, its input). The map, options and writing are the CAM base's (cam-base.ts); this file
 * gives alpha.
 */
export const gradCamWeights: ChannelWeights = (_A, G) => tf.mean(G, [1, 2], true);

export const gradCam = defineCamMethod({
  id: 'grad-cam',
  title: 'Grad-CAM',
  paper: 'Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization',
  channelWeights: gradCamWeights,
});

/** L^c for every sample: raw [n, h, w] at the layer and upsampled [n, H, W]. */
export function gradCamMaps(ctx: Pick<MethodContext, 'model' | 'input'>, layer: string, targets: readonly number[]) {
  return classCamMaps(ctx, layer, targets, gradCamWeights);
}
