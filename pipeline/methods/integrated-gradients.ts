import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { gaussianBlur } from '../blur.ts';
import { blackPixel, classScores, meanInputGradient, writeSignedImages } from './attribution.ts';
import { opacityOption, CAPTUM_OUTLIERS, writeSampleMaps } from './maps.ts';
import { resolveTargets, targetOption } from './targets.ts';
import { defineMethod } from './types.ts';

/** Relative completeness error above which the run warns (and suggests more steps). */
export const COMPLETENESS_WARN = 0.05;

/**
 * Integrated gradients (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep
 * Networks"), eq. 3, for the input x [H, W, C], a baseline x' [H, W, C] and the pre-softmax score
 * S_c, with the right Riemann sum over m = `steps` points:
 *   A = (x - x') * (1/m) * sum_{k=1..m} dS_c/dx (x' + (k/m)(x - x'))              [H, W, C]
 * This is the paper's formula. Captum defaults to Gauss-Legendre nodes, whose high order pays only
 * for smooth integrands; for the networks convlens targets (ReLU/LeakyReLU, max-pooling,
 * inference-mode BatchNorm: piecewise linear) the gradient along the straight path is exactly
 * piecewise constant, where every rule converges at the rate set by the kinks, about 1/m. Equal
 * weights also make the mean a running sum over micro-batches, and the completeness error below
 * tells the user when m is too small. On smooth models the error falls as 1/m.
 * Completeness (the paper's sanity check): |sum A - (S_c(x) - S_c(x'))| is saved in the stats,
 * absolute and relative to |S_c(x) - S_c(x')|; above 5% the run warns and suggests more steps.
 * Baselines: `black` is a black image in the model's input space, (0 * scale - mean_k) / std_k
 * per channel k from the preprocessing (0 for the default pixel / 255), or `baselineValue` when
 * given (e.g. a gray baseline); `blurred` is the input blurred with a Gaussian of `blurSigma` pixels (Sturmfels,
 * Lundberg & Lee 2020, "Visualizing the Impact of Feature Attribution Baselines"), as
 * scipy.ndimage.gaussian_filter(x, [s, s, 0], mode='reflect', truncate=4) (blur.ts, rule 'scipy').
 * Output: the signed channel sum sum_k A_k [H, W] (raw) shown as a heatmap of its absolute value
 * scaled as Captum's visualize_image_attr(sign="absolute_value", outlier_perc=2) does:
 *   min(|sum_k A_k| / t, 1),   t = the smallest |value| at which the sorted |values| reach 98% of their sum
 * (render.ts outlierThreshold; IG maps are sparse and min-max leaves them nearly black), and
 * A [H, W, C] as a signed image (raw).
 */
export const integratedGradients = defineMethod({
  id: 'integrated-gradients',
  title: 'Integrated gradients',
  paper: 'Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks',
  needs: {},
  perSample: true,
  options: z.strictObject({
    enabled: z.boolean().default(true),
    target: targetOption,
    steps: z.number().int().min(1).max(10_000).default(50).describe('Points on the path from the baseline to the image (one backward pass each)'),
    baseline: z.enum(['black', 'blurred']).default('black').describe('black: a black image; blurred: the image under a Gaussian blur'),
    baselineValue: z.union([z.number(), z.array(z.number()).min(1).max(3)]).optional()
      .describe('Baseline value in input space for baseline: black, one or per channel (default: a black pixel, (0 - input.mean) / input.std)'),
    blurSigma: z.number().positive().default(10).describe('Standard deviation in pixels of the blur for baseline: blurred'),
    opacity: opacityOption,
  }),
  check(opts, model) {
    const v = opts.baselineValue;
    const channels = model.inputShape[2];
    if (Array.isArray(v) && v.length !== 1 && v.length !== channels) {
      return [{ key: 'baselineValue', message: `has ${v.length} values; the model takes ${channels} channel${channels === 1 ? '' : 's'}: give 1 value or ${channels}` }];
    }
    return [];
  },
  passes: (opts) => opts.steps,
  async run(ctx, opts) {
    const targets = resolveTargets(ctx, opts.target, 'integrated-gradients');
    if (targets.length === 0) return;
    const N = ctx.input.shape[0];
    const black = blackPixel(ctx, opts.baselineValue);
    const m = opts.steps;
    const bar = ctx.logger.progress(`integrated-gradients (${m} steps per image)`, N * m);
    const attrs: tf.Tensor3D[] = [];
    const stats: Record<string, number | string>[] = [];
    try {
      for (let i = 0; i < N; i++) {
        const x = tf.slice(ctx.input, [i, 0, 0, 0], [1, -1, -1, -1]);
        const base = opts.baseline === 'black'
          ? tf.tidy(() => tf.add(tf.zerosLike(x), tf.tensor1d(black)) as tf.Tensor4D)
          : gaussianBlur(x, opts.blurSigma);
        const diff = tf.sub(x, base) as tf.Tensor4D;
        let done = 0;
        try {
          const meanGrad = await meanInputGradient(ctx.model, m, targets[i], (start, size) => tf.tidy(() => {
            const a = tf.tensor1d(Array.from({ length: size }, (_, k) => (start + k + 1) / m)).reshape([size, 1, 1, 1]);
            return tf.add(base, tf.mul(a, diff)) as tf.Tensor4D;
          }), (k) => { bar.tick(k - done); done = k; });
          const attr = tf.tidy(() => tf.mul(tf.squeeze(diff, [0]), meanGrad) as tf.Tensor3D);
          meanGrad.dispose();
          attrs.push(attr);
          const [sx, sb] = tf.tidy(() => classScores(ctx.model, tf.concat([x, base], 0) as tf.Tensor4D, [targets[i], targets[i]]));
          stats.push(completeness(attr.dataSync() as Float32Array, sx, sb));
        } finally {
          tf.dispose([x, base, diff]);
        }
        const rel = stats[i].completenessRelError as number;
        if (rel > COMPLETENESS_WARN) {
          ctx.logger.warn(`integrated-gradients: ${ctx.samples[i].source}: the attributions sum to ${fmt(stats[i].attributionSum as number)} but S(x) - S(baseline) = ${fmt((stats[i].scoreInput as number) - (stats[i].scoreBaseline as number))} (${(rel * 100).toFixed(1)}% off); raise methods.integrated-gradients.steps (now ${m})`);
        }
      }
      const A = tf.stack(attrs) as tf.Tensor4D;
      try {
        await writeSignedImages(ctx, A, {
          method: 'integrated-gradients', title: 'Integrated gradients', name: 'attribution', targets,
          describe: 'each channel of the signed attribution',
        });
        const signed = tf.sum(A, 3) as tf.Tensor3D;
        const display = tf.abs(signed) as tf.Tensor3D;
        try {
          await writeSampleMaps(ctx, { raw: signed, display }, { reading: 'bright pixels change the score most, in either direction', 
            method: 'integrated-gradients', title: 'Integrated gradients', targets, opacity: opts.opacity, display: CAPTUM_OUTLIERS,
            stats: (i) => ({ ...stats[i], steps: m, baseline: opts.baseline, ...(opts.baseline === 'blurred' ? { blurSigma: opts.blurSigma } : { baselineValue: black.join(', ') }) }),
          });
        } finally {
          tf.dispose([signed, display]);
        }
      } finally {
        A.dispose();
      }
    } finally {
      tf.dispose(attrs);
      bar.done();
    }
  },
});

function fmt(v: number): string {
  return Number(v.toPrecision(4)).toString();
}

/** Completeness of A against S(x) - S(x'): the sum in float64, errors absolute and relative. */
export function completeness(attr: ArrayLike<number>, scoreInput: number, scoreBaseline: number) {
  let sum = 0;
  for (let k = 0; k < attr.length; k++) sum += attr[k];
  const delta = scoreInput - scoreBaseline;
  const err = Math.abs(sum - delta);
  return {
    attributionSum: sum,
    scoreInput,
    scoreBaseline,
    completenessError: err,
    completenessRelError: err / Math.max(Math.abs(delta), 1e-6),
  };
}

