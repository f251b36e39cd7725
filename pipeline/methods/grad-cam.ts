import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { classScore } from '../model/adapter.ts';
import { blend, colorize, normalizeMinMax, upsampleBilinear } from '../render.ts';
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
      await writeMaps(ctx, 'grad-cam', 'Grad-CAM', layer, targets, maps, opts.alpha);
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

/** Writes heatmap + overlay images and raw maps for each sample. Shared by CAM-family methods. */
export async function writeMaps(ctx: MethodContext, method: string, title: string, layer: string, targets: number[], maps: { raw: tf.Tensor3D; upsampled: tf.Tensor3D }, alpha: number) {
  const [n, h, w] = maps.raw.shape;
  const [, H, W] = maps.upsampled.shape;
  const raw = (await maps.raw.data()) as Float32Array;
  const up = (await maps.upsampled.data()) as Float32Array;
  for (let i = 0; i < n; i++) {
    const s = ctx.samples[i];
    const cls = targets[i];
    const className = ctx.classes[cls] ?? String(cls);
    const map = normalizeMinMax(up.subarray(i * H * W, (i + 1) * H * W));
    const heat = colorize(map, ctx.settings.colormap);
    const rawMap = raw.slice(i * h * w, (i + 1) * h * w);
    let max = 0;
    for (const v of rawMap) max = Math.max(max, v);
    const base = { method, layer, image: s.id, class: cls, className };
    await ctx.out.image(`${method}/${s.id}`, `${cls}-heatmap`, {
      ...base,
      id: `${method}/${s.id}/${cls}/heatmap`,
      title: `${title} heatmap for "${className}" at ${layer}`,
      alt: `${title} heatmap of sample ${s.source} for class ${className}, layer ${layer}; bright regions raised the score`,
      stats: { max, layerHeight: h, layerWidth: w },
    }, { pixels: heat, width: W, height: H, channels: 3 }, { data: rawMap, shape: [h, w] });
    await ctx.out.image(`${method}/${s.id}`, `${cls}-overlay`, {
      ...base,
      id: `${method}/${s.id}/${cls}/overlay`,
      title: `${title} over the image for "${className}"`,
      alt: `${title} heatmap blended over sample ${s.source} for class ${className}`,
    }, { pixels: blend(s.display, heat, alpha), width: W, height: H, channels: 3 });
  }
}
