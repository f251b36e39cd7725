import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { channelReduceOption, meanInputGradient, reduceChannels } from './attribution.ts';
import { opacityOption, CAPTUM_OUTLIERS, writeSampleMaps } from './maps.ts';
import { resolveTargets, targetOption } from './targets.ts';
import { mulberry32, normals } from '../random.ts';
import { defineMethod } from './types.ts';

/**
 * SmoothGrad (Smilkov, Thorat, Kim, Viégas & Wattenberg 2017, "SmoothGrad: removing noise by
 * adding noise"). For the input x [H, W, C] and the pre-softmax score S_c:
 *   sigma = noise * (max(x) - min(x))          (the paper's "noise level", over the whole image)
 *   g~    = (1/n) * sum_{i=1..n} dS_c/dx (x + eps_i),   eps_i ~ N(0, sigma^2 I)     [H, W, C]
 *   M     = max_k |g~_k|  or  sum_k g~_k^2     (`variant`, as for saliency)
 * The raw gradients are averaged and reduced afterwards, as in the paper and PAIR-code/saliency
 * with magnitude=False (tf-keras-vis averages |g| instead; PAIR's magnitude=True and Captum's
 * NoiseTunnel "smoothgrad_sq" average g^2: those are not this method). Default n = 25, PAIR-code's
 * default: the paper shows n = 50 but reports diminishing returns beyond that, and every sample
 * costs one backward pass per noisy copy. Noise is seeded per sample (seed + the sample's index in
 * the run, drawn with random.ts's mulberry32, whatever the backend), so a run is reproducible and
 * does not depend on how samples are split across workers. Raw data: M [H, W]. Heatmap:
 * min(M / t, 1), t the value at which the sorted M sum to 98% of their total (Captum's
 * visualize_image_attr default outlier_perc = 2, as for saliency), not min-max.
 */
export const smoothgrad = defineMethod({
  id: 'smoothgrad',
  title: 'SmoothGrad',
  paper: 'Smilkov et al. 2017, SmoothGrad: removing noise by adding noise',
  needs: {},
  perSample: true,
  options: z.strictObject({
    enabled: z.boolean().default(true),
    target: targetOption,
    n: z.number().int().min(1).max(1000).default(25).describe('Noisy copies per image (one backward pass each; the paper uses 50)'),
    noise: z.number().min(0).max(1).default(0.15).describe('Noise standard deviation as a fraction of the image value range (max - min)'),
    seed: z.number().int().default(0).describe('Added to compute.seed: the seed of the noise (sample i uses compute.seed + seed + i)'),
    variant: channelReduceOption,
    opacity: opacityOption,
  }),
  passes: (opts) => opts.n,
  async run(ctx, opts) {
    const targets = resolveTargets(ctx, opts.target, 'smoothgrad');
    if (targets.length === 0) return;
    const [N, H, W, C] = ctx.input.shape;
    const bar = ctx.logger.progress(`smoothgrad (${opts.n} noisy copies per image)`, N * opts.n);
    const sigmas: number[] = [];
    const means: tf.Tensor3D[] = [];
    try {
      for (let i = 0; i < N; i++) {
        const x = tf.slice(ctx.input, [i, 0, 0, 0], [1, -1, -1, -1]);
        const sigma = opts.noise * tf.tidy(() => tf.sub(tf.max(x), tf.min(x)).dataSync()[0]);
        sigmas.push(sigma);
        // the project's generator: tfjs treats seed 0 as "no seed", and its draws depend on the backend
        const noise = tf.tensor4d(normals(mulberry32(ctx.settings.seed + opts.seed + ctx.samples[i].index), opts.n * H * W * C).map((v) => v * sigma), [opts.n, H, W, C]);
        let done = 0;
        try {
          means.push(await meanInputGradient(ctx.model, opts.n, targets[i],
            (start, size) => tf.tidy(() => tf.add(x, tf.slice(noise, [start, 0, 0, 0], [size, -1, -1, -1])) as tf.Tensor4D),
            (k) => { bar.tick(k - done); done = k; }));
        } finally {
          tf.dispose([x, noise]);
        }
      }
      const map = tf.tidy(() => reduceChannels(tf.stack(means) as tf.Tensor4D, opts.variant));
      try {
        await writeSampleMaps(ctx, { raw: map, display: map }, { reading: 'bright pixels change the score most, in either direction', 
          method: 'smoothgrad', title: 'SmoothGrad', targets, opacity: opts.opacity, display: CAPTUM_OUTLIERS,
          stats: (i) => ({ variant: opts.variant, n: opts.n, noise: opts.noise, sigma: sigmas[i], seed: ctx.settings.seed + opts.seed + ctx.samples[i].index }),
        });
      } finally {
        map.dispose();
      }
    } finally {
      tf.dispose(means);
      bar.done();
    }
  },
});
