import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { channelReduceOption, inputGradients, reduceChannels } from './attribution.ts';
import { opacityOption, CAPTUM_OUTLIERS, writeSampleMaps } from './maps.ts';
import { resolveTargets, targetOption } from './targets.ts';
import { defineMethod } from './types.ts';

/**
 * Saliency maps (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks:
 * Visualising Image Classification Models and Saliency Maps", sec. 3.1). For the input x
 * [H, W, C] and the pre-softmax score S_c of class c:
 *   g = dS_c / dx                                                    [H, W, C]
 *   M = max_k |g_k|                 (variant abs-max: the paper; tf-keras-vis' Saliency)
 *   M = sum_k g_k^2                 (variant squared: the squared gradient magnitude per pixel)
 * Captum's Saliency returns |g| per channel and leaves the reduction to the visualisation, which
 * sums over channels; PAIR-code/saliency's visualisation sums |g| over channels too. We follow the
 * paper. Raw data: M [H, W]. The heatmap shows min(M / t, 1), with t the smallest value at which
 * the sorted M sum to 98% of their total (Captum's visualize_image_attr, outlier_perc = 2; render.ts
 * outlierThreshold): gradient maps are sparse, and min-max would leave all but a few pixels dark.
 */
export const saliency = defineMethod({
  id: 'saliency',
  title: 'Saliency',
  paper: 'Simonyan, Vedaldi & Zisserman 2014, Deep Inside Convolutional Networks: Visualising Image Classification Models and Saliency Maps',
  needs: {},
  perSample: true,
  options: z.strictObject({
    enabled: z.boolean().default(true),
    target: targetOption,
    variant: channelReduceOption,
    opacity: opacityOption,
  }),
  async run(ctx, opts) {
    const targets = resolveTargets(ctx, opts.target, 'saliency');
    if (targets.length === 0) return;
    const grad = inputGradients(ctx.model, ctx.input, targets);
    const map = reduceChannels(grad, opts.variant);
    grad.dispose();
    try {
      await writeSampleMaps(ctx, { raw: map, display: map }, { reading: 'bright pixels change the score most, in either direction', 
        method: 'saliency', title: 'Saliency', targets, opacity: opts.opacity, display: CAPTUM_OUTLIERS,
        stats: () => ({ variant: opts.variant }),
      });
    } finally {
      tf.dispose(map);
    }
  },
});
