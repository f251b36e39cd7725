import { z } from 'zod';
import { nearest } from '../errors.ts';
import type { OptionProblem, SampleItem } from './types.ts';

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
