import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { ModelAdapter } from '../model/adapter.ts';
import { tileGrid, valueRange } from '../render.ts';
import { upsampleMaps } from './cam-base.ts';
import { grayTile, unitScale } from './gray-tiles.ts';
import { opacityOption, writeSampleMaps } from './maps.ts';
import { defineMethod, layerProblem, type MethodContext, type OptionProblem } from './types.ts';

/**
 * Activation maps (Zeiler & Fergus 2014; Yosinski et al. 2015, "Understanding Neural Networks
 * Through Deep Visualization", the live activation grid). For a layer with activation
 * A [h, w, K] on one image:
 *  - a grid of the channel maps A^k [h, w] (the first `maxChannels`), each scaled to gray by its
 *    own min and max on that image (a constant map is black), k in reading order;
 *  - a "layer activation" overlay: the map mean_k A^k (or one channel A^j with
 *    `overlayChannel: j`), resized bilinearly to the input [H, W] with half-pixel centres,
 *    min-max scaled, colour-mapped and blended over the image, as the CAM-style heatmaps are.
 * Raw data: the grid carries A [h, w, K] (every channel, not only those shown); the overlay
 * carries the chosen map [h, w] at the layer's resolution.
 * Default layers: every layer with a convolution geometry, in model order, up to the last
 * spatial layer, plus that layer (so a NiN/Darknet 1x1-conv classifier head is left out); when
 * they are more than `maxLayers`, the ones at indices round(i (N - 1) / (maxLayers - 1)), which
 * keeps the first and the last. An explicit `layers` list is used as given.
 * All layers come out of one forward pass per batch of samples.
 */
export const activations = defineMethod({
  id: 'activations',
  title: 'Activation maps',
  paper: 'Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks; Yosinski et al. 2015, Understanding Neural Networks Through Deep Visualization',
  needs: { spatialLayer: true },
  perSample: true,
  options: z.strictObject({
    enabled: z.boolean().default(true),
    layers: z.array(z.string()).min(1).optional()
      .describe('Layers to show (default: the convolutions up to the last spatial layer and that layer, at most maxLayers, spread over depth)'),
    maxLayers: z.number().int().positive().default(6).describe('Cap on the default layer selection'),
    maxChannels: z.number().int().positive().default(64).describe('Channel maps drawn per layer (the first ones); the raw data keeps all'),
    overlayChannel: z.union([z.literal('mean'), z.number().int().nonnegative()]).default('mean')
      .describe('Map blended over the image: "mean" over channels, or one channel index'),
    tileScale: z.number().int().min(1).max(32).optional()
      .describe('Each activation cell is drawn as tileScale x tileScale pixels (default: round(48 / max(h, w)), at least 1)'),
    opacity: opacityOption,
  }),
  check(opts, model) {
    const problems: OptionProblem[] = [];
    (opts.layers ?? []).forEach((name, i) => {
      const key = `layers.${i}`;
      const p = layerProblem(model, key, name);
      if (p.length === 0 && !isSpatial(model.layer(name).outputShape)) {
        p.push({ key, message: `layer "${name}" has output shape [${model.layer(name).outputShape.map((d) => d ?? 'null').join(', ')}]; activation maps need a spatial layer [batch, height, width, channels]` });
      }
      problems.push(...p);
    });
    if (problems.length) return problems;
    let layers: string[];
    try {
      layers = opts.layers ?? defaultActivationLayers(model, opts.maxLayers);
    } catch (err) {
      return [{ key: 'layers', message: (err as Error).message }];
    }
    if (typeof opts.overlayChannel === 'number') {
      for (const name of layers) {
        const k = model.layer(name).outputShape[3];
        if (k != null && opts.overlayChannel >= k) {
          problems.push({ key: 'overlayChannel', message: `channel ${opts.overlayChannel} is out of range for layer "${name}", which has ${k} channels (0-${k - 1})` });
        }
      }
    }
    return problems;
  },
  async run(ctx, opts) {
    const layers = opts.layers ?? defaultActivationLayers(ctx.model, opts.maxLayers);
    const n = ctx.input.shape[0];
    const bs = Math.max(1, ctx.settings.batchSize);
    for (let start = 0; start < n; start += bs) {
      const end = Math.min(n, start + bs);
      const xb = tf.slice(ctx.input, [start, 0, 0, 0], [end - start, -1, -1, -1]);
      let acts: Map<string, tf.Tensor>;
      try {
        const out = ctx.model.forward(xb, layers);
        out.logits.dispose();
        acts = out.activations;
      } finally {
        xb.dispose();
      }
      try {
        for (const layer of layers) await writeLayer(ctx, layer, acts.get(layer) as tf.Tensor4D, start, opts);
      } finally {
        tf.dispose([...acts.values()]);
      }
    }
  },
});

type ActivationOptions = z.infer<typeof activations.options>;

const isSpatial = (shape: readonly (number | null)[]) => shape.length === 4;

/** The default layers (see the method's doc comment). Throws when the model has no spatial layer. */
export function defaultActivationLayers(model: ModelAdapter, maxLayers: number): string[] {
  const last = model.lastSpatialLayer();
  const lastIndex = model.layers.findIndex((l) => l.name === last.name);
  const picked = model.layers.filter((l, i) => (i < lastIndex && l.conv !== undefined && isSpatial(l.outputShape)) || i === lastIndex).map((l) => l.name);
  if (picked.length <= maxLayers) return picked;
  if (maxLayers === 1) return [last.name];
  const idx = Array.from({ length: maxLayers }, (_, i) => Math.round((i * (picked.length - 1)) / (maxLayers - 1)));
  return [...new Set(idx)].map((i) => picked[i]);
}

/** Channel grids and the overlay of one layer for the samples [start, start + batch). */
async function writeLayer(ctx: MethodContext, layer: string, a: tf.Tensor4D, start: number, opts: ActivationOptions): Promise<void> {
  const [b, h, w, K] = a.shape;
  const [, H, W] = ctx.input.shape;
  const shown = Math.min(K, opts.maxChannels);
  const scale = opts.tileScale ?? Math.max(1, Math.round(48 / Math.max(h, w)));
  const data = (await a.data()) as Float32Array;
  const per = h * w * K;
  for (let i = 0; i < b; i++) {
    const s = ctx.samples[start + i];
    const raw = data.slice(i * per, (i + 1) * per);
    const tiles: Uint8Array[] = [];
    let constant = 0;
    for (let k = 0; k < K; k++) {
      const channel = new Float32Array(h * w);
      for (let p = 0; p < h * w; p++) channel[p] = raw[p * K + k];
      const [lo, hi] = valueRange(channel);
      if (!(hi > lo)) constant++;
      if (k < shown) tiles.push(grayTile(channel, unitScale(lo, hi, 0)));
    }
    const [min, max] = valueRange(raw);
    const grid = tileGrid(tiles, w, h, 1, { scale, gap: 1 });
    await ctx.out.image(`activations/${s.id}`, `${layer}-channels`, {
      id: `activations/${s.id}/${layer}/channels`,
      method: 'activations',
      image: s.id,
      layer,
      title: `Channel maps of ${layer} (${shown} of ${K}, ${h}x${w})`,
      alt: `Grid of ${shown} of the ${K} activation maps of layer ${layer} for sample ${s.source}, each ${h}x${w}, in gray, each scaled by its own minimum and maximum`,
      stats: { channels: K, shown, height: h, width: w, min, max, constantChannels: constant, tileScale: scale },
    }, { ...grid, channels: 1 }, { data: raw, shape: [h, w, K] });
  }
  const c = opts.overlayChannel;
  const maps = tf.tidy(() => {
    const m = (c === 'mean' ? tf.mean(a, 3) : tf.squeeze(tf.slice(a, [0, 0, 0, c], [-1, -1, -1, 1]), [3])) as tf.Tensor3D;
    return { raw: m, display: upsampleMaps(m, H, W) };
  });
  const samples = ctx.samples.slice(start, start + b);
  try {
    await writeSampleMaps({ ...ctx, samples }, maps, {
      method: 'activations',
      title: c === 'mean' ? 'Mean activation over channels' : `Activation of channel ${c}`,
      layer,
      variant: layer,
      targets: samples.map((s) => s.target),
      classCaption: () => 'the image',
      reading: 'bright regions are strongly activated',
      classless: true,
      opacity: opts.opacity,
      stats: () => ({ overlayChannel: String(c), channels: K }),
    });
  } finally {
    tf.dispose([maps.raw, maps.display]);
  }
}
