import { z } from 'zod';
import * as tf from '@tensorflow/tfjs';
import { ConvlensError, nearest } from '../errors.ts';
import type { ModelAdapter } from '../model/adapter.ts';
import type { MethodContext, OptionProblem, SampleItem } from './types.ts';

/** `target` option: "top-1" (the prediction), a class index, or a class name. */
export const targetOption = z.union([z.literal('top-1'), z.number().int().nonnegative(), z.string().min(1)]).default('top-1')
  .describe('Class to explain: "top-1" (the prediction), a class index, or a class name');
export type TargetOption = z.infer<typeof targetOption>;

export function resolveTarget(target: TargetOption, sample: SampleItem, classes: readonly string[]): number {
  if (target === 'top-1') return sample.target;
  if (typeof target === 'number') return target;
  return classes.indexOf(target);
}

export function targetProblem(target: TargetOption, classes: readonly string[]): OptionProblem[] {
  if (target === 'top-1') return [];
  if (typeof target === 'number') {
    return target < classes.length ? [] : [{ key: 'target', message: `class index ${target} is out of range; the model has ${classes.length} classes (0-${classes.length - 1})` }];
  }
  return classes.includes(target) ? [] : [{ key: 'target', message: `no class "${target}"; nearest: ${nearest(target, classes, 3).join(', ')}` }];
}

/**
 * One-hot rows [targets.length, numClasses] (class scores are selected by mask and sum). Built
 * on the JS side: tf.oneHot refuses depth 1, which a single-logit classifier has.
 */
export function oneHotRows(targets: readonly number[], numClasses: number): tf.Tensor2D {
  const rows = new Float32Array(targets.length * numClasses);
  targets.forEach((t, i) => { rows[i * numClasses + t] = 1; });
  return tf.tensor2d(rows, [targets.length, numClasses]);
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

/** The target class of every sample for a method's `target` option (errors name the config key). */
export function resolveTargets(ctx: Pick<MethodContext, 'samples' | 'classes'>, target: TargetOption, method: string): number[] {
  return ctx.samples.map((s) => resolveClassOption(method, 'target', target, s, ctx.classes));
}
