import * as tf from '@tensorflow/tfjs';
import { withReluRule } from '../model/relu-rules.ts';
import { camOptions, camProblems } from './cam-base.ts';
import { gradCamMaps } from './grad-cam.ts';
import { inputGradients, reduceChannels, writeSignedImages } from './attribution.ts';
import { CAPTUM_OUTLIERS, writeSampleMaps } from './maps.ts';
import { resolveTargets } from './targets.ts';
import { defineMethod, type MethodContext } from './types.ts';

/**
 * Guided Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
 * Gradient-based Localization", sec. 3.1): the guided-backpropagation input gradient
 * (Springenberg et al. 2015; relu-rules.ts's `guided` ReLU rule, dx = max(g, 0) * [x > 0]) of the
 * pre-softmax score y^c, multiplied pointwise by the Grad-CAM map of the same class bilinearly
 * upsampled to the input (half-pixel centres):
 *   G^c = (d y^c / d x)_guided  *  upsample(L^c)                 [H, W, C], L^c as in grad-cam.ts
 * The paper's product of the two maps, with L^c as computed (ReLU, not min-max scaled);
 * pytorch-grad-cam's example multiplies by the min-max scaled map, which differs only where the
 * map's minimum is above 0 (the ReLU usually sets it to 0), and only in the raw values.
 * Shown twice per sample:
 *  - as a gradient image drawn as every signed image (attribution.ts signedImage: pytorch-grad-cam's
 *    deprocess_image); raw data G [H, W, C] in the model's channel order;
 *  - as a heatmap of its magnitude M = max_channels |G^c| (Simonyan et al. 2014's saliency
 *    reduction) with overlay; raw data [H, W]. The picture shows min(M / t, 1), t the value at
 *    which the sorted M sum to 98% of their total (Captum's visualize_image_attr default
 *    outlier_perc = 2; render.ts outlierThreshold): the product is sparser than either factor.
 * Default layer: the last spatial layer (for a NiN/Darknet 1x1-conv head, its input). Options and
 * their check are the CAM base's (cam-base.ts).
 */
export const guidedGradCam = defineMethod({
  id: 'guided-grad-cam',
  title: 'Guided Grad-CAM',
  paper: 'Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization',
  needs: { spatialLayer: true },
  perSample: true,
  options: camOptions({ layer: 'Layer of the Grad-CAM factor (default: the last layer with a spatial output)' }),
  check(opts, model, classes?: readonly string[]) {
    return camProblems('Guided Grad-CAM', opts, model, classes);
  },
  passes: () => 2,
  async run(ctx, opts) {
    const layer = opts.layer ?? ctx.model.lastSpatialLayer().name;
    const targets = resolveTargets(ctx, opts.target, 'guided-grad-cam');
    const { product, magnitude } = await guidedGradCamMaps(ctx, layer, targets);
    try {
      await writeSignedImages(ctx, product, {
        method: 'guided-grad-cam', title: 'Guided Grad-CAM', name: 'gradient', targets, layer,
        describe: `the guided-backpropagation gradient of each input channel, weighted by the Grad-CAM map at ${layer}`,
      });
      await writeSampleMaps(ctx, { raw: magnitude, display: magnitude }, { method: 'guided-grad-cam', title: 'Guided Grad-CAM magnitude', layer, targets, opacity: opts.opacity, display: CAPTUM_OUTLIERS, reading: 'bright pixels change the score most, in either direction' });
    } finally {
      tf.dispose([product, magnitude]);
    }
  },
});

/**
 * The guided gradient [n, H, W, C] times the upsampled Grad-CAM [n, H, W] of each sample's
 * target, and its per-pixel magnitude max_c |.| [n, H, W].
 */
export async function guidedGradCamMaps(ctx: Pick<MethodContext, 'model' | 'input'>, layer: string, targets: readonly number[]) {
  const cam = gradCamMaps(ctx, layer, targets);
  cam.raw.dispose();
  try {
    const grad = await withReluRule('guided', () => inputGradients(ctx.model, ctx.input, targets));
    try {
      return tf.tidy(() => {
        const product = tf.mul(grad, tf.expandDims(cam.upsampled, 3)) as tf.Tensor4D;
        return { product, magnitude: reduceChannels(product, 'abs-max') };
      });
    } finally {
      grad.dispose();
    }
  } finally {
    cam.upsampled.dispose();
  }
}
