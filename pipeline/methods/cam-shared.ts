import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from '../errors.ts';
import { classScore, type ModelAdapter } from '../model/adapter.ts';
import { upsampleBilinear } from '../render.ts';
import { resolveTarget, targetProblem, type TargetOption } from './targets.ts';
import { layerProblem, type MethodContext, type OptionProblem, type SampleItem } from './types.ts';

/*
 * Steps shared by cam, grad-cam-plus-plus, guided-grad-cam and contrastive-grad-cam.
 * `weightedGradCamMaps` generalises grad-cam.ts's `gradCamMaps` from one-hot class rows to any
 * objective weights (gradCamMaps(ctx, layer, t) = weightedGradCamMaps(ctx, layer, oneHot(t))).
 */

/** Maps [n, h, w] to [n, H, W] by bilinear resizing with half-pixel centres (render.ts). */
export function upsampleMaps(raw: tf.Tensor3D, height: number, width: number): tf.Tensor3D {
  return tf.tidy(() => tf.squeeze(upsampleBilinear(tf.expandDims(raw, 3) as tf.Tensor4D, height, width), [3]) as tf.Tensor3D);
}

/**
 * Grad-CAM of the objective sum_i sum_c weights[i, c] * y_i^c (y: pre-softmax scores):
 * alpha_k = mean_ij dS/dA_ij^k, L = ReLU(sum_k alpha_k A^k). Raw [n, h, w] and upsampled [n, H, W].
 */
export function weightedGradCamMaps(ctx: Pick<MethodContext, 'model' | 'input'>, layer: string, weights: tf.Tensor2D) {
  const r = ctx.model.gradient(ctx.input, classScore(weights), layer);
  try {
    return tf.tidy(() => {
      const alpha = tf.mean(r.grad, [1, 2], true);
      const raw = tf.relu(tf.sum(tf.mul(alpha, r.value), 3)) as tf.Tensor3D;
      const [, H, W] = ctx.input.shape;
      return { raw, upsampled: upsampleMaps(raw, H, W) };
    });
  } finally {
    tf.dispose([r.grad, r.value, r.logits]);
  }
}

/** One-hot rows [n, numClasses] (the objective weights of "the score of class t_i"). */
export function oneHotRows(targets: readonly number[], numClasses: number): tf.Tensor2D {
  return tf.tidy(() => tf.oneHot(tf.tensor1d([...targets], 'int32'), numClasses).toFloat() as tf.Tensor2D);
}

/** The `layer` option must name a layer with a spatial output [batch, h, w, c]. */
export function spatialLayerProblems(model: ModelAdapter, key: string, name: string | undefined, method: string): OptionProblem[] {
  const problems = layerProblem(model, key, name);
  if (problems.length === 0 && name !== undefined && model.layer(name).outputShape.length !== 4) {
    problems.push({ key, message: `layer "${name}" has output shape [${model.layer(name).outputShape.map((d) => d ?? 'null').join(', ')}]; ${method} needs a spatial layer [batch, height, width, channels]; nearest spatial: ${model.lastSpatialLayer().name}` });
  }
  return problems;
}

/**
 * Problems of class options (`target`, `versus`, ...). Without the label list (the check
 * contract passes only the model), indices are checked against model.numClasses and names are
 * left to `resolveClassOption` at run time.
 */
export function classOptionProblems(model: ModelAdapter, classes: readonly string[] | undefined, options: Record<string, TargetOption | 'runner-up'>): OptionProblem[] {
  const problems: OptionProblem[] = [];
  const names = classes ?? Array.from({ length: model.numClasses }, (_, i) => `class ${i}`);
  for (const [key, value] of Object.entries(options)) {
    if (value === 'runner-up' || value === 'top-1') continue;
    if (typeof value === 'string' && !classes) continue;
    problems.push(...targetProblem(value, names).map((p) => ({ key, message: p.message })));
  }
  return problems;
}

/** resolveTarget, failing loudly (a class name that is not a label would silently explain nothing). */
export function resolveClassOption(method: string, key: string, value: TargetOption, sample: SampleItem, classes: readonly string[]): number {
  const problem = targetProblem(value, classes)[0];
  const c = resolveTarget(value, sample, classes);
  if (problem || c < 0 || c >= classes.length) {
    throw new ConvlensError(`viz.yaml: methods.${method}.${key}: ${problem?.message ?? `class ${String(value)} is not one of the ${classes.length} classes`}`, {
      hint: 'Give a class index (0-based) or a name exactly as in model.labels.',
    });
  }
  return c;
}
