import { z } from 'zod';
import type { MethodDef } from './types.ts';
import { modelSummary } from './model-summary.ts';
import { filters } from './filters.ts';
import { gradCam } from './grad-cam.ts';
import { datasetPredictions } from './dataset-predictions.ts';
import { cam } from './cam.ts';
import { gradCamPlusPlus } from './grad-cam-plus-plus.ts';
import { guidedGradCam } from './guided-grad-cam.ts';
import { contrastiveGradCam } from './contrastive-grad-cam.ts';
import { occlusion } from './occlusion.ts';
import { activations } from './activations.ts';
import { saliency } from './saliency.ts';
import { smoothgrad } from './smoothgrad.ts';
import { deconvnet } from './deconvnet.ts';
import { guidedBackprop } from './guided-backprop.ts';
import { integratedGradients } from './integrated-gradients.ts';
import { topPatches } from './top-patches.ts';
import { embedding } from './embedding.ts';
import { classVisualization } from './class-visualization.ts';

/**
 * The one list of methods. The config schema (`methods.<id>`), the CLI's `--only` choices, the
 * manifest's method list, the site navigation and the test matrix all derive from it.
 */
export const METHODS = [
  modelSummary, datasetPredictions, filters, activations, topPatches, embedding, classVisualization,
  occlusion, saliency, smoothgrad, deconvnet, guidedBackprop, integratedGradients,
  cam, gradCam, gradCamPlusPlus, guidedGradCam, contrastiveGradCam,
] as const satisfies readonly MethodDef[];

export const METHOD_IDS = METHODS.map((m) => m.id) as readonly string[];

export function methodsSchema() {
  const shape = Object.fromEntries(METHODS.map((m) => [m.id, (m.options as z.ZodObject).prefault({})])) as unknown as {
    [M in (typeof METHODS)[number] as M['id']]: z.ZodPrefault<M['options']>;
  };
  return z.strictObject(shape).prefault({});
}

export function methodDefaults() {
  return Object.fromEntries(METHODS.map((m) => [m.id, m.options.parse({})]));
}
