import { constantImage, datasetChannelMean } from './curves.ts';
import { curveMetric } from './curve-metric.ts';
import { pixelToInputs } from '../data/preprocess.ts';
import { r6, type MetricsContext } from './evaluation.ts';
import type { MetricsOptions } from './options.ts';
import { defineMetric } from './metric.ts';
import type { DeletionMetric } from './types.ts';

/**
 * Deletion (Petsiuk, Das & Saenko 2018, "RISE"): the target probability as the
 * map's top-ranked pixels are replaced by the fill, from the whole image to none of it
 * (curves.ts: start = x, end = the fill image); the area under that curve, lower is better.
 * The fill is `metrics.deletion.fill`: the dataset's per-channel mean in input space (the
 * samples' when there is no dataset), or a pixel value through the preprocessing.
 */
export const deletion = defineMetric({
  id: 'deletion',
  title: 'Deletion',
  paper: 'Petsiuk, Das & Saenko 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models',
  key: 'deletion',
  async run(ev, opts) {
    const fill = await deletionFill(ev.ctx, opts.fill, ev.images);
    const fillImage = constantImage(ev.P, fill.input);
    return { ...await curveMetric(ev, 'deletion', opts.steps, opts.pixelsPerStep, (i) => ev.sampleImage[i], () => fillImage), fill } satisfies DeletionMetric;
  },
});

/** The deletion fill in input space: the dataset's (or samples') per-channel mean, or a pixel value. */
async function deletionFill(ctx: MetricsContext, fill: MetricsOptions['deletion']['fill'], images: Float32Array): Promise<DeletionMetric['fill']> {
  const C = ctx.input.shape[3];
  if (typeof fill === 'number') {
    return { source: 'value', pixel: fill, input: pixelToInputs(fill, C, ctx.preprocessing).map(r6) };
  }
  if (ctx.dataset && ctx.dataset.refs.length > 0) {
    const got = await datasetChannelMean(ctx.dataset, ctx.settings.batchSize);
    if (got) return { source: 'dataset', input: got.mean.map(r6), images: got.images };
  }
  ctx.logger.info('metrics: deletion fills removed pixels with the samples\' mean colour (no data.dataset to take the mean over)');
  const sum = new Float64Array(C);
  for (let i = 0; i < images.length; i++) sum[i % C] += images[i];
  const count = images.length / C;
  return { source: 'samples', input: Array.from(sum, (v) => r6(v / count)), images: ctx.samples.length };
}
