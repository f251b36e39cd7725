import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { classScore } from '../model/adapter.ts';
import { spatialLayerProblems } from './cam-shared.ts';
import { gradCamMaps } from './grad-cam.ts';
import { alphaOption, writeSampleMaps } from './maps.ts';
import { classOptionProblems, oneHotRows, targetOption, resolveTargets } from './targets.ts';
import { defineMethod, type MethodContext } from './types.ts';

/**
 * Guided Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
 * Gradient-based Localization", sec. 3.1): the guided-backpropagation input gradient
 * (Springenberg et al. 2015; the adapter's `guided` ReLU rule, dx = max(g, 0) * [x > 0]) of the
 * pre-softmax score y^c, multiplied pointwise by the Grad-CAM map of the same class bilinearly
 * upsampled to the input (half-pixel centres):
 *   G^c = (d y^c / d x)_guided  *  upsample(L^c)                 [H, W, C], L^c as in grad-cam.ts
 * The paper's product of the two maps, with L^c as computed (ReLU, not min-max scaled);
 * pytorch-grad-cam's example multiplies by the min-max scaled map, which differs only where the
 * map's minimum is above 0 (the ReLU usually sets it to 0), and only in the raw values.
 * Shown twice per sample:
 *  - as a gradient image: each input channel as its colour (BGR models flipped to RGB, one channel
 *    as gray), signed values normalised over the whole image with pytorch-grad-cam's
 *    deprocess_image, clip(0.5 + 0.1 (G - mean) / (std + 1e-5), 0, 1); raw data G [H, W, C] in the
 *    model's channel order;
 *  - as a heatmap of its magnitude max_channels |G^c| (Simonyan et al. 2014's saliency reduction)
 *    with overlay; raw data [H, W].
 * Default layer: the last spatial layer (for a NiN/Darknet 1x1-conv head, its input).
 */
export const guidedGradCam = defineMethod({
  id: 'guided-grad-cam',
  title: 'Guided Grad-CAM',
  paper: 'Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization',
  needs: { gradients: true },
  options: z.strictObject({
    enabled: z.boolean().default(true),
    layer: z.string().optional().describe('Layer of the Grad-CAM factor (default: the last layer with a spatial output)'),
    target: targetOption,
    alpha: alphaOption,
  }),
  check(opts, model, classes?: readonly string[]) {
    return [...spatialLayerProblems(model, 'layer', opts.layer, 'Guided Grad-CAM'), ...classOptionProblems(model, classes, { target: opts.target })];
  },
  passes: () => 2,
  async run(ctx, opts) {
    const layer = opts.layer ?? ctx.model.lastSpatialLayer().name;
    const targets = resolveTargets(ctx, opts.target, 'guided-grad-cam');
    const { product, magnitude } = await guidedGradCamMaps(ctx, layer, targets);
    try {
      const [n, H, W, C] = product.shape;
      const values = (await product.data()) as Float32Array;
      for (let i = 0; i < n; i++) {
        const s = ctx.samples[i];
        const cls = targets[i];
        const className = ctx.classes[cls] ?? String(cls);
        const g = values.slice(i * H * W * C, (i + 1) * H * W * C);
        let min = Infinity;
        let max = -Infinity;
        for (const v of g) { if (v < min) min = v; if (v > max) max = v; }
        await ctx.out.image(`guided-grad-cam/${s.id}`, `${cls}-gradient`, {
          id: `guided-grad-cam/${s.id}/${cls}/gradient`,
          method: 'guided-grad-cam',
          image: s.id,
          class: cls,
          className,
          layer,
          title: `Guided Grad-CAM for "${className}" (Grad-CAM at ${layer})`,
          alt: `Guided Grad-CAM of sample ${s.source} for "${className}": the guided-backpropagation gradient of each input channel, weighted by the Grad-CAM map at ${layer}; gray is zero`,
          stats: { min, max, channels: C },
        }, { pixels: gradientImage(g, C, ctx.settings.channelOrder), width: W, height: H, channels: 3 }, { data: g, shape: [H, W, C] });
      }
      await writeSampleMaps(ctx, { raw: magnitude, display: magnitude }, { method: 'guided-grad-cam', title: 'Guided Grad-CAM magnitude', layer, targets, alpha: opts.alpha, reading: 'bright pixels change the score most, in either direction' });
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
  const cam = gradCamMaps(ctx, layer, [...targets]);
  cam.raw.dispose();
  const weights = oneHotRows(targets, ctx.model.numClasses);
  try {
    const r = await ctx.model.withReluRule('guided', () => ctx.model.gradient(ctx.input, classScore(weights), 'input'));
    try {
      return tf.tidy(() => {
        const product = tf.mul(r.grad, tf.expandDims(cam.upsampled, 3)) as tf.Tensor4D;
        return { product, magnitude: tf.max(tf.abs(product), 3) as tf.Tensor3D };
      });
    } finally {
      tf.dispose([r.grad, r.value, r.logits]);
    }
  } finally {
    tf.dispose([weights, cam.upsampled]);
  }
}

/**
 * Signed gradient values [H*W*C] as 8-bit RGB: pytorch-grad-cam's deprocess_image over the whole
 * image (one mean and standard deviation for all channels, so colours keep their balance).
 */
export function gradientImage(values: Float32Array, channels: number, channelOrder: 'rgb' | 'bgr'): Uint8Array {
  const pixels = values.length / channels;
  let vals = values;
  let C = channels;
  if (channels !== 1 && channels !== 3) {
    vals = new Float32Array(pixels);
    for (let p = 0; p < pixels; p++) {
      let s = 0;
      for (let c = 0; c < channels; c++) s += values[p * channels + c];
      vals[p] = s / channels;
    }
    C = 1;
  }
  let mean = 0;
  for (const v of vals) mean += v;
  mean /= vals.length || 1;
  let sq = 0;
  for (const v of vals) sq += (v - mean) ** 2;
  const std = Math.sqrt(sq / (vals.length || 1));
  const to8 = (v: number) => Math.round(Math.min(1, Math.max(0, 0.5 + (0.1 * (v - mean)) / (std + 1e-5))) * 255);
  const out = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) {
      const src = C === 1 ? 0 : channelOrder === 'bgr' ? 2 - c : c;
      out[p * 3 + c] = to8(vals[p * C + src]);
    }
  }
  return out;
}
