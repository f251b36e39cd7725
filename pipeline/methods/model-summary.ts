import { z } from 'zod';
import { defineMethod } from './types.ts';

/**
 * Model summary: every layer with its type, output shape (batch first, null) and parameter
 * count, as in Keras' model.summary(). The artifact records both the sum over layers and
 * model.countParams(); they must agree (a mismatch means a layer was missed).
 */
export const modelSummary = defineMethod({
  id: 'model-summary',
  title: 'Model summary',
  needs: {},
  options: z.strictObject({ enabled: z.boolean().default(true) }),
  async run(ctx) {
    const layers = ctx.model.layers.map((l) => ({ name: l.name, type: l.type, outputShape: l.outputShape, params: l.params, inputs: l.inputs }));
    const layerSum = layers.reduce((s, l) => s + l.params, 0);
    const total = ctx.model.countParams();
    if (layerSum !== total) ctx.logger.warn(`model-summary: layer parameters add up to ${layerSum}, model.countParams() says ${total}`);
    await ctx.out.data('model-summary', 'summary', {
      id: 'model-summary',
      method: 'model-summary',
      title: 'Model summary',
      stats: { totalParams: total, layerParamsSum: layerSum, layers: layers.length },
    }, { format: ctx.model.format, inputShape: ctx.model.inputShape, classes: ctx.classes.length, totalParams: total, layers });
  },
});
