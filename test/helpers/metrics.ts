/**
 * Helpers for the metrics tests: hand-made maps written as a method's heatmap artifacts (exactly
 * as writeSampleMaps writes them), so runMetrics reads them back like real method output.
 */
import * as tf from '@tensorflow/tfjs';
import { writeSampleMaps } from '../../pipeline/methods/maps.ts';
import { upsampleMaps } from '../../pipeline/methods/cam-base.ts';
import { defineMethod, type MethodContext } from '../../pipeline/methods/types.ts';
import { z } from 'zod';

/** Writes `maps` (one flat [h, w] map per sample) as heatmaps of `method` for `targets` (on `grid`: MapMeta.grid). */
export async function writeMaps(ctx: MethodContext, method: string, maps: ArrayLike<number>[], shape: [number, number], targets: readonly number[], grid?: [number, number]): Promise<void> {
  const [h, w] = shape;
  const [, H, W] = ctx.input.shape;
  const raw = tf.tensor3d(Float32Array.from(maps.flatMap((m) => Array.from(m))), [maps.length, h, w]);
  const display = h === H && w === W ? raw : upsampleMaps(raw, H, W);
  try {
    await writeSampleMaps(ctx, { raw, display }, { method, title: method, targets, opacity: 0.5, ...(grid ? { grid } : {}) });
  } finally {
    tf.dispose(display === raw ? [raw] : [raw, display]);
  }
}

/**
 * A test-only "method" whose maps ignore the model: |x| summed over channels (an edge-free
 * input echo). The randomization test must flag it.
 */
export const inputEcho = defineMethod({
  id: 'input-echo',
  title: 'Input echo',
  needs: {},
  options: z.strictObject({ enabled: z.boolean().default(true) }),
  async run(ctx) {
    const [, H, W] = ctx.input.shape;
    const data = tf.tidy(() => tf.sum(tf.abs(ctx.input), 3).dataSync());
    const maps = ctx.samples.map((_, i) => data.slice(i * H * W, (i + 1) * H * W));
    await writeMaps(ctx, 'input-echo', maps, [H, W], ctx.samples.map((s) => s.target));
  },
});

/**
 * A test-only "method" whose maps are the channel sum of one layer's activation (option `layer`,
 * at the input resolution): it depends on that layer and those below it, not on the ones above.
 */
export const layerEcho = defineMethod({
  id: 'layer-echo',
  title: 'Layer echo',
  needs: {},
  options: z.strictObject({ enabled: z.boolean().default(true), layer: z.string().default('c1') }),
  async run(ctx, opts) {
    const [, H, W] = ctx.input.shape;
    const { logits, activations } = ctx.model.forward(ctx.input, [opts.layer]);
    const act = activations.get(opts.layer)!;
    const data = tf.tidy(() => tf.sum(act, 3).dataSync());
    tf.dispose([logits, act]);
    const maps = ctx.samples.map((_, i) => data.slice(i * H * W, (i + 1) * H * W));
    await writeMaps(ctx, 'layer-echo', maps, [H, W], ctx.samples.map((s) => s.target));
  },
});

/** p = sigmoid(s): the softmax of the logits [s, 0]. */
export const sigmoid = (s: number) => 1 / (1 + Math.exp(-s));

/** Trapezoid area in float64, written out independently of the module under test. */
export function handAuc(ys: number[]): number {
  const n = ys.length - 1;
  let a = 0;
  for (let k = 0; k < n; k++) a += (ys[k] + ys[k + 1]) / 2 / n;
  return a;
}
