import type { ModelAdapter } from '../model/adapter.ts';
import { findCamHead } from './cam.ts';
import type { MethodDef } from './types.ts';

/**
 * Why a method cannot run on this model, from what it declares it needs, or undefined when it
 * can. Checked before any work, so a model without a spatial layer (a classifier that flattens
 * early) or without a CAM head gets every other method instead of failing half-way.
 */
export function unmetNeed(def: MethodDef, model: ModelAdapter): string | undefined {
  if (def.needs.spatialLayer || def.needs.gapHead) {
    try {
      model.lastSpatialLayer();
    } catch {
      return 'the model has no layer with a spatial output ([batch, height, width, channels] with height and width > 1)';
    }
  }
  if (def.needs.gapHead) {
    const found = findCamHead(model);
    if (!found.ok) return found.problem;
  }
  return undefined;
}
