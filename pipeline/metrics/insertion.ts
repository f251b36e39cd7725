import { gaussianBlur } from '../blur.ts';
import { curveMetric } from './curve-metric.ts';
import { defineMetric } from './metric.ts';
import type { InsertionMetric } from './types.ts';

/**
 * Insertion (Petsiuk, Das & Saenko 2018, "RISE"): the target probability as the
 * map's top-ranked pixels are revealed on a blurred copy of the image (curves.ts: start =
 * blur(x), end = x), the blur a Gaussian of `sigma` pixels (blur.ts, rule 'scipy'); the area
 * under that curve, higher is better.
 */
export const insertion = defineMetric({
  id: 'insertion',
  title: 'Insertion',
  paper: 'Petsiuk, Das & Saenko 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models',
  key: 'insertion',
  async run(ev, opts) {
    const { ctx, P, C } = ev;
    const blurredTensor = gaussianBlur(ctx.input, opts.sigma);
    const blurred = (await blurredTensor.data()) as Float32Array;
    blurredTensor.dispose();
    const blurredImage = ctx.samples.map((_, i) => blurred.subarray(i * P * C, (i + 1) * P * C));
    return { ...await curveMetric(ev, 'insertion', opts.steps, opts.pixelsPerStep, (i) => blurredImage[i], (i) => ev.sampleImage[i]), sigma: opts.sigma } satisfies InsertionMetric;
  },
});
