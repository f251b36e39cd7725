import * as tf from '@tensorflow/tfjs';
import { yieldIfDue } from '../interrupt.ts';
import { z } from 'zod';
import { perChannel, pixelToInputs } from '../data/preprocess.ts';
import { ConvlensError } from '../errors.ts';
import { classScore, type ModelAdapter } from '../model/adapter.ts';
import { withReluRule, type ReluRule } from '../model/relu-rules.ts';
import { valueRange } from '../render.ts';
import { CAPTUM_OUTLIERS, opacityOption, writeSampleMaps } from './maps.ts';
import { oneHotRows, resolveTargets, targetOption, type TargetOption } from './targets.ts';
import { defineMethod, type MethodContext } from './types.ts';

/**
 * Shared steps of the input-gradient methods (saliency, SmoothGrad, deconvnet, guided
 * backpropagation, integrated gradients): input gradients of a pre-softmax class score (the
 * classes come from targets.ts), the channel reductions that turn a gradient [n, H, W, C] into a
 * map [n, H, W], and the writer of signed per-channel images (gradients, attributions).
 */

/** How a gradient [.., C] becomes one value per pixel. */
export const channelReduceOption = z.enum(['abs-max', 'squared']).default('abs-max')
  .describe('abs-max: max over channels of |g| (Simonyan et al.); squared: sum over channels of g^2');
export type ChannelReduce = z.infer<typeof channelReduceOption>;

/** d S_{t_i}(x_i) / d x_i for every example i: [n, H, W, C] (micro-batched by the adapter). */
export function inputGradients(model: ModelAdapter, x: tf.Tensor4D, targets: readonly number[]): tf.Tensor4D {
  const weights = oneHotRows(targets, model.numClasses);
  try {
    const r = model.gradient(x, classScore(weights), 'input');
    tf.dispose([r.value, r.logits]);
    return r.grad as tf.Tensor4D;
  } finally {
    weights.dispose();
  }
}

/**
 * (1 / count) * sum_k d S_target / dx evaluated at the `count` points `points(start, size)`
 * yields ([size, H, W, C], owned by the caller of `points` and disposed here): [H, W, C].
 * Points are made and differentiated in chunks of the adapter's backward batch, so only one
 * chunk is in memory at a time.
 */
export async function meanInputGradient(model: ModelAdapter, count: number, target: number, points: (start: number, size: number) => tf.Tensor4D, onChunk?: (done: number) => void): Promise<tf.Tensor3D> {
  const chunk = Math.max(1, model.backwardBatch);
  let sum: tf.Tensor3D | undefined;
  for (let start = 0; start < count; start += chunk) {
    const size = Math.min(chunk, count - start);
    const x = points(start, size);
    let g: tf.Tensor4D;
    try {
      g = inputGradients(model, x, new Array<number>(size).fill(target));
    } finally {
      x.dispose();
    }
    const part = tf.tidy(() => tf.sum(g, 0) as tf.Tensor3D);
    g.dispose();
    if (sum) {
      const next = tf.add(sum, part) as tf.Tensor3D;
      tf.dispose([sum, part]);
      sum = next;
    } else {
      sum = part;
    }
    onChunk?.(start + size);
    await yieldIfDue();
  }
  if (!sum) throw new Error('convlens: internal error: meanInputGradient needs count >= 1');
  const mean = tf.div(sum, count) as tf.Tensor3D;
  sum.dispose();
  return mean;
}

/** Pre-softmax score S_{t_i}(x_i) per example, in one forward pass. */
export function classScores(model: ModelAdapter, x: tf.Tensor4D, targets: readonly number[]): Float32Array {
  return tf.tidy(() => {
    const { logits, activations } = model.forward(x);
    for (const t of activations.values()) t.dispose();
    return tf.sum(tf.mul(logits, oneHotRows(targets, model.numClasses)), 1).dataSync() as Float32Array;
  });
}

/** [n, H, W, C] -> [n, H, W]: max_c |g| (abs-max) or sum_c g^2 (squared). */
export function reduceChannels(g: tf.Tensor4D, how: ChannelReduce): tf.Tensor3D {
  return tf.tidy(() => (how === 'abs-max' ? tf.max(tf.abs(g), 3) : tf.sum(tf.square(g), 3)) as tf.Tensor3D);
}

/**
 * The value of a black pixel in the model's input space, per input channel (model order):
 * pixelToInput(0, c) from the preprocessing, unless the option gives the value(s) (one value
 * for every channel, or one per channel).
 */
export function blackPixel(ctx: MethodContext, option: number | number[] | undefined): number[] {
  const channels = ctx.input.shape[3];
  if (option !== undefined) {
    const v = typeof option === 'number' ? [option] : option;
    if (v.length !== 1 && v.length !== channels) {
      throw new ConvlensError(`viz.yaml: methods.integrated-gradients.baselineValue: has ${v.length} values; give 1 or one per input channel (${channels})`, { hint: 'The baseline value is in input space, after the preprocessing: one number for every channel, or one per channel.' });
    }
    return Array.from({ length: channels }, (_, c) => perChannel(v, c));
  }
  return pixelToInputs(0, channels, ctx.preprocessing);
}

/**
 * Signed values [H*W*C] (a gradient or attribution) as 8-bit pixels, pytorch-grad-cam's
 * deprocess_image over the whole image:
 *   v -> clip(0.5 + 0.1 (v - mean) / (std + 1e-5), 0, 1) * 255
 * with one mean and standard deviation over all pixels and channels, so colours keep their
 * balance; values beyond 5 standard deviations clip; a constant image is mid-gray. 3 channels: RGB (BGR models flipped); any other count: the channel
 * mean as gray (1 channel out).
 */
export function signedImage(values: Float32Array, channels: number, channelOrder: 'rgb' | 'bgr'): { pixels: Uint8Array; channels: 1 | 3 } {
  const pixels = values.length / channels;
  const out: 1 | 3 = channels === 3 ? 3 : 1;
  let vals = values;
  if (out === 1 && channels !== 1) {
    vals = new Float32Array(pixels);
    for (let p = 0; p < pixels; p++) {
      let s = 0;
      for (let c = 0; c < channels; c++) s += values[p * channels + c];
      vals[p] = s / channels;
    }
  }
  let mean = 0;
  for (const v of vals) mean += v;
  mean /= vals.length || 1;
  let sq = 0;
  for (const v of vals) sq += (v - mean) ** 2;
  const std = Math.sqrt(sq / (vals.length || 1));
  const to8 = (v: number) => Math.round(Math.min(1, Math.max(0, 0.5 + (0.1 * (v - mean)) / (std + 1e-5))) * 255);
  const px = new Uint8Array(pixels * out);
  for (let p = 0; p < pixels; p++) {
    if (out === 1) px[p] = to8(vals[p]);
    else for (let c = 0; c < 3; c++) px[p * 3 + c] = to8(vals[p * 3 + (channelOrder === 'bgr' ? 2 - c : c)]);
  }
  return { pixels: px, channels: out };
}

/**
 * Writes one picture per sample of a signed tensor [n, H, W, C] (a gradient or attribution),
 * drawn by signedImage. Raw: the tensor [H, W, C] in the model's channel order.
 */
export async function writeSignedImages(ctx: MethodContext, values: tf.Tensor4D, meta: {
  method: string;
  title: string;
  /** File and id suffix: "gradient", "attribution". */
  name: string;
  targets: readonly number[];
  /** What the picture shows, for the alt text. */
  describe: string;
  /** The layer a factor of the values comes from (Guided Grad-CAM). */
  layer?: string;
}): Promise<void> {
  const [n, H, W, C] = values.shape;
  const data = (await values.data()) as Float32Array;
  const per = H * W * C;
  for (let i = 0; i < n; i++) {
    const s = ctx.samples[i];
    const cls = meta.targets[i];
    const className = ctx.classes[cls] ?? String(cls);
    const raw = data.slice(i * per, (i + 1) * per);
    const [min, max] = valueRange(raw);
    const { pixels, channels } = signedImage(raw, C, ctx.settings.channelOrder);
    await ctx.out.image(`${meta.method}/${s.id}`, `${cls}-${meta.name}`, {
      id: `${meta.method}/${s.id}/${cls}/${meta.name}`,
      method: meta.method,
      image: s.id,
      class: cls,
      className,
      ...(meta.layer ? { layer: meta.layer } : {}),
      title: `${meta.title} ${meta.name} for "${className}"${meta.layer ? ` (at ${meta.layer})` : ''}`,
      alt: `${meta.title} ${meta.name} of sample ${s.source} for "${className}" as a ${channels === 3 ? 'colour' : 'gray'} image, ${meta.describe}; gray is the image's mean value`,
      stats: { min, max, channels: C },
    }, { pixels, width: W, height: H, channels }, { data: raw, shape: [H, W, C] });
  }
}

/**
 * A method that is the input gradient under a ReLU backward rule (deconvnet, guided
 * backpropagation): per sample, with a target and the overlay opacity as options; its own file
 * holds the doc comment with the rule.
 */
export function defineReluRuleMethod(d: { id: string; title: string; paper: string; rule: Exclude<ReluRule, 'standard'> }) {
  return defineMethod({
    id: d.id,
    title: d.title,
    paper: d.paper,
    needs: {},
    perSample: true,
    options: z.strictObject({
      enabled: z.boolean().default(true),
      target: targetOption,
      opacity: opacityOption,
    }),
    async run(ctx, opts) {
      await runReluRuleGradients(ctx, d.rule, { method: d.id, title: d.title, target: opts.target, opacity: opts.opacity });
    },
  });
}

/**
 * Deconvnet and guided backpropagation: the input gradient of the class score under a
 * modified ReLU backward rule, written as a signed gradient image (raw [H, W, C]) and as a
 * heatmap of max_c |g| with its overlay (raw [H, W]), scaled by Captum's outlier rule
 * (CAPTUM_OUTLIERS) like every input-gradient heatmap.
 */
export async function runReluRuleGradients(ctx: MethodContext, rule: Exclude<ReluRule, 'standard'>, meta: {
  method: string;
  title: string;
  target: TargetOption;
  opacity: number;
}): Promise<void> {
  const targets = resolveTargets(ctx, meta.target, meta.method);
  if (targets.length === 0) return;
  const grad = await withReluRule(rule, () => inputGradients(ctx.model, ctx.input, targets));
  try {
    await writeSignedImages(ctx, grad, {
      method: meta.method, title: meta.title, name: 'gradient', targets,
      describe: 'each channel of the signed gradient',
    });
    const map = reduceChannels(grad, 'abs-max');
    try {
      await writeSampleMaps(ctx, { raw: map, display: map }, { reading: 'bright pixels change the score most, in either direction', 
        method: meta.method, title: meta.title, targets, opacity: meta.opacity, display: CAPTUM_OUTLIERS,
        stats: () => ({ reluRule: rule, reduce: 'abs-max' }),
      });
    } finally {
      map.dispose();
    }
  } finally {
    grad.dispose();
  }
}
