import { z } from 'zod';
import { nearest } from '../errors.ts';

const stepsOption = z.number().int().min(1).max(10_000).default(25)
  .describe('Steps from the whole image to none of it (deletion) or back (insertion); pixelsPerStep = ceil(H*W / steps)');
const pixelsPerStepOption = z.number().int().positive().optional()
  .describe('Pixels removed or revealed per step (default: ceil(H*W / steps); RISE used 224 on 224x224 images)');

/**
 * The `metrics` section of viz.yaml: how faithful each method's maps are (deletion, insertion,
 * pointing game) and whether they pass the model-parameter randomization sanity check, next to a
 * random-map baseline. Every field has a default; each metric can be switched off.
 */
export const metricsOptions = z.strictObject({
  enabled: z.boolean().default(true).describe('Compute the metrics at all'),
  methods: z.union([z.literal('all'), z.array(z.string().min(1)).min(1)]).default('all')
    .describe('Methods whose maps are evaluated: "all" (every method that wrote per-sample class heatmaps, except contrastive variants) or a list of method ids'),
  baselineSeed: z.number().int().nonnegative().default(0)
    .describe('Added to compute.seed: the seed of the random baseline maps (uniform noise on each evaluated map\'s grid, upsampled like the maps; sample i uses compute.seed + baselineSeed + i)'),
  curves: z.boolean().default(true).describe('Draw the deletion/insertion curves as pictures (per sample and the mean)'),
  deletion: z.strictObject({
    enabled: z.boolean().default(true),
    steps: stepsOption,
    pixelsPerStep: pixelsPerStepOption,
    fill: z.union([z.literal('dataset-mean'), z.number().min(0).max(255)]).default('dataset-mean')
      .describe('What a removed pixel becomes: "dataset-mean" (per channel over data.dataset; over the samples when there is no dataset) or a pixel value 0-255 mapped through the preprocessing'),
  }).prefault({}),
  insertion: z.strictObject({
    enabled: z.boolean().default(true),
    steps: stepsOption,
    pixelsPerStep: pixelsPerStepOption,
    sigma: z.number().positive().default(5).describe('Standard deviation in pixels of the Gaussian blur of the starting image (RISE: 5)'),
  }).prefault({}),
  randomization: z.strictObject({
    enabled: z.boolean().default(true),
    maxSteps: z.number().int().min(1).max(1000).default(6)
      .describe('Cascade points at which maps are recomputed, evenly spaced over the weighted layers from the top (the first randomizes only the output layer, the last all of them); each point reruns every evaluated method'),
    seed: z.number().int().nonnegative().default(0).describe('Added to compute.seed: the seed of the re-initialised weights'),
    threshold: z.number().min(-1).max(1).default(0.5)
      .describe('Flag a method whose mean Spearman correlation of |map| with the original, after the full cascade, is above this'),
    methods: z.array(z.string().min(1)).min(1).optional()
      .describe('Methods to rerun for this test (default: the evaluated methods that cost at most maxPasses model passes per sample); it is the costliest metric: every listed method runs again at every cascade point'),
    maxPasses: z.number().int().min(1).default(8)
      .describe('Without a methods list, leave out methods whose map costs more model passes per sample than this (occlusion, SmoothGrad and integrated gradients at their defaults); the report names them'),
  }).prefault({}),
  pointingGame: z.strictObject({
    enabled: z.boolean().default(true),
    tolerance: z.number().nonnegative().default(15)
      .describe('Hit tolerance in pixels at a 224-pixel input (Zhang et al.: 15), scaled by min(H, W) / 224'),
  }).prefault({}),
}).prefault({});

export type MetricsOptions = z.infer<typeof metricsOptions>;

/**
 * Problems of the section against the known method ids (for `prepare`, next to the methods'
 * own checks): unknown ids in `methods` and `randomization.methods`, with the nearest ids.
 */
export function metricsProblems(opts: MetricsOptions, methodIds: readonly string[]): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  const check = (path: string, ids: readonly string[] | 'all' | undefined) => {
    if (!ids || ids === 'all') return;
    ids.forEach((id, i) => {
      if (!methodIds.includes(id)) problems.push({ path: `${path}.${i}`, message: `no method "${id}"; nearest: ${nearest(id, methodIds, 3).join(', ')}` });
    });
  };
  check('metrics.methods', opts.methods);
  check('metrics.randomization.methods', opts.randomization.methods);
  return problems;
}
