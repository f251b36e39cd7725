import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { classScore, type ModelAdapter } from '../model/adapter.ts';
import { upsampleBilinear } from '../render.ts';
import { opacityOption, writeSampleMaps, type MapMeta } from './maps.ts';
import { classOptionProblems, oneHotRows, resolveTargets, targetOption, type TargetOption } from './targets.ts';
import { defineMethod, layerProblem, type MethodContext, type MethodDef, type OptionProblem } from './types.ts';

/*
 * The base of the Grad-CAM family, as pytorch-grad-cam's BaseCAM. For an objective S (a weighted
 * sum of pre-softmax class scores, S_i = sum_c weights[i, c] y_i^c: one-hot rows for a class, +1/-1
 * rows for a contrast), the activation A [n, h, w, K] of a spatial layer and G = dS/dA:
 *   w   = channelWeights(A, G)                     [n, 1, 1, K], or [n, h, w, K] per position
 *   L   = ReLU( sum_k w_k * A^k )                                   [n, h, w]
 * then bilinear upsampling to the input size (half-pixel centres); the heatmap picture min-max
 * scales it per image (maps.ts). Raw data: L at the layer's resolution.
 * A variant (grad-cam.ts, grad-cam-plus-plus.ts, contrastive-grad-cam.ts) supplies its channel
 * weights and, when it explains something other than each sample's target class, its objective;
 * the options, their check, the gradient, the ReLU, the upsampling and the writing live here.
 */

/**
 * A variant's weights from A [n, h, w, K] and G = dS/dA (same shape): one per channel [n, 1, 1, K]
 * (Grad-CAM's spatial mean of G), or one per position and channel [n, h, w, K] (Layer-CAM's
 * ReLU(G)); multiplied with A elementwise.
 */
export type ChannelWeights = (A: tf.Tensor4D, G: tf.Tensor4D) => tf.Tensor;

/** What a CAM method explains: the samples it explains and, for each, the objective and the artifact's class. */
export interface CamObjective {
  /** Indices into ctx.samples, in order; samples left out get no map. */
  rows: number[];
  /** Objective weights [rows.length, classes]; writeCamMaps disposes them. */
  weights: tf.Tensor2D;
  /** The class each row's artifacts are filed under. */
  targets: number[];
  /** What else sets row j's artifacts apart (variant, class caption, stats). */
  meta?: (j: number) => Pick<MapMeta, 'variant' | 'classCaption' | 'stats'>;
}

/** Maps [n, h, w] to [n, H, W] by bilinear resizing with half-pixel centres (render.ts). */
export function upsampleMaps(raw: tf.Tensor3D, height: number, width: number): tf.Tensor3D {
  return tf.tidy(() => tf.squeeze(upsampleBilinear(tf.expandDims(raw, 3) as tf.Tensor4D, height, width), [3]) as tf.Tensor3D);
}

/** L for the objective `weights` [n, classes] at `layer`: raw [n, h, w] and upsampled [n, H, W]. */
export function weightedCamMaps(ctx: Pick<MethodContext, 'model' | 'input'>, layer: string, weights: tf.Tensor2D, channelWeights: ChannelWeights) {
  const r = ctx.model.gradient(ctx.input, classScore(weights), layer);
  try {
    return tf.tidy(() => {
      const w = channelWeights(r.value as tf.Tensor4D, r.grad as tf.Tensor4D);
      const raw = tf.relu(tf.sum(tf.mul(w, r.value), 3)) as tf.Tensor3D;
      const [, H, W] = ctx.input.shape;
      return { raw, upsampled: upsampleMaps(raw, H, W) };
    });
  } finally {
    tf.dispose([r.grad, r.value, r.logits]);
  }
}

/** L for the score of one class per sample (`targets`), the objective of every variant but the contrastive one. */
export function classCamMaps(ctx: Pick<MethodContext, 'model' | 'input'>, layer: string, targets: readonly number[], channelWeights: ChannelWeights) {
  const weights = oneHotRows(targets, ctx.model.numClasses);
  try {
    return weightedCamMaps(ctx, layer, weights, channelWeights);
  } finally {
    weights.dispose();
  }
}

const LAYER = 'Layer to explain (default: the last layer with a spatial output)';

/**
 * The options of a Grad-CAM family method: enabled, layer, target, the variant's own options,
 * opacity (in this order, which the config schema keeps). `layer` and `target` may carry other
 * descriptions.
 */
export function camOptions<E extends z.ZodRawShape = Record<never, never>>(o: { layer?: string; target?: typeof targetOption; extra?: E } = {}) {
  return z.strictObject({
    enabled: z.boolean().default(true),
    layer: z.string().optional().describe(o.layer ?? LAYER),
    target: o.target ?? targetOption,
    ...(o.extra ?? ({} as E)),
    opacity: opacityOption,
  });
}

/** The `layer` option must name a layer with a spatial output [batch, h, w, c]. */
export function spatialLayerProblems(model: ModelAdapter, key: string, name: string | undefined, method: string): OptionProblem[] {
  const problems = layerProblem(model, key, name);
  if (problems.length === 0 && name !== undefined && model.layer(name).outputShape.length !== 4) {
    problems.push({ key, message: `layer "${name}" has output shape [${model.layer(name).outputShape.map((d) => d ?? 'null').join(', ')}]; ${method} needs a spatial layer [batch, height, width, channels]; nearest spatial: ${model.lastSpatialLayer().name}` });
  }
  return problems;
}

/** Problems of the shared options: a spatial `layer` and a `target` class. */
export function camProblems(title: string, opts: { layer?: string; target: TargetOption }, model: ModelAdapter, classes?: readonly string[]): OptionProblem[] {
  return [...spatialLayerProblems(model, 'layer', opts.layer, title), ...classOptionProblems(model, classes, { target: opts.target })];
}

/** The default objective: each sample's `target` class. */
export function classObjective(ctx: MethodContext, target: TargetOption, method: string): CamObjective {
  const targets = resolveTargets(ctx, target, method);
  return { rows: targets.map((_, i) => i), weights: oneHotRows(targets, ctx.model.numClasses), targets };
}

/** Computes L for an objective at `layer` and writes each explained sample's heatmap, overlay and raw map. */
export async function writeCamMaps(ctx: MethodContext, layer: string, objective: CamObjective, channelWeights: ChannelWeights, meta: Pick<MapMeta, 'method' | 'title' | 'opacity'>): Promise<void> {
  const { rows } = objective;
  const input = rows.length === 0 || rows.length === ctx.samples.length ? ctx.input : tf.gather(ctx.input, rows);
  let maps: ReturnType<typeof weightedCamMaps>;
  try {
    if (rows.length === 0) return;
    maps = weightedCamMaps({ model: ctx.model, input }, layer, objective.weights, channelWeights);
  } finally {
    objective.weights.dispose();
    if (input !== ctx.input) input.dispose();
  }
  try {
    for (let j = 0; j < rows.length; j++) {
      const raw = tf.slice(maps.raw, [j, 0, 0], [1, -1, -1]);
      const display = tf.slice(maps.upsampled, [j, 0, 0], [1, -1, -1]);
      try {
        await writeSampleMaps({ ...ctx, samples: [ctx.samples[rows[j]]] }, { raw, display }, { ...meta, layer, targets: [objective.targets[j]], ...objective.meta?.(j) });
      } finally {
        tf.dispose([raw, display]);
      }
    }
  } finally {
    tf.dispose([maps.raw, maps.upsampled]);
  }
}

/** The options every Grad-CAM family method has (camOptions). */
type CamOpts = { layer?: string; target: TargetOption; opacity: number };

/** A Grad-CAM variant: what it is, its channel weights, and (optionally) its own options, checks and objective. */
export interface CamVariant<S extends z.ZodObject> {
  id: string;
  title: string;
  paper: string;
  channelWeights: ChannelWeights;
  /** camOptions(...) with other descriptions or options of the variant's own (default: camOptions()). */
  options?: S;
  /** Problems of the variant's own options; `found` are those of the shared ones. */
  check?(opts: z.infer<S>, model: ModelAdapter, classes: readonly string[] | undefined, found: readonly OptionProblem[]): OptionProblem[];
  /** What to explain (default: each sample's `target` class, classObjective). */
  objective?(ctx: MethodContext, opts: z.infer<S>): CamObjective;
}

/** A per-sample method of the Grad-CAM family from its variant (see the note at the top). */
export function defineCamMethod<S extends z.ZodObject = ReturnType<typeof camOptions>>(v: CamVariant<S>): MethodDef<S> {
  return defineMethod({
    id: v.id,
    title: v.title,
    paper: v.paper,
    needs: { spatialLayer: true },
    perSample: true,
    options: (v.options ?? camOptions()) as S,
    check(opts, model, classes) {
      const found = camProblems(v.title, opts as CamOpts, model, classes);
      return v.check ? [...found, ...v.check(opts, model, classes, found)] : found;
    },
    async run(ctx, opts) {
      const o = opts as CamOpts;
      const layer = o.layer ?? ctx.model.lastSpatialLayer().name;
      const objective = v.objective ? v.objective(ctx, opts) : classObjective(ctx, o.target, v.id);
      await writeCamMaps(ctx, layer, objective, v.channelWeights, { method: v.id, title: v.title, opacity: o.opacity });
    },
  });
}
