import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { LayerInfo, ModelAdapter } from '../model/adapter.ts';
import { tileGrid } from '../render.ts';
import { valueRange } from '../render.ts';
import { grayTile, unitScale } from './gray-tiles.ts';
import { defineMethod, layerProblem, type MethodContext, type OptionProblem } from './types.ts';

/**
 * Convolution filters (Krizhevsky et al. 2012, fig. 3; Zeiler & Fergus 2014).
 *
 * First layer: the kernel W [kh, kw, c_in, c_out] of a 2-D convolution shown as one kh x kw tile
 * per output channel. c_in = 3: an RGB tile (BGR models are flipped to RGB); c_in = 1: gray;
 * otherwise the mean over input channels, in gray. Raw data: the kernel as [c_out, kh, kw, c_in].
 *
 * Deeper layers (`layers`): the filters of a deeper layer act on feature maps, not colours, so
 * each output filter f becomes a row of gray tiles, one per input channel c, showing the slice
 * W[:, :, c, f] [kh, kw] (the first `maxChannels` filters and input channels). One grid per
 * layer; raw data: the part shown, as [c_out', kh, kw, c_in'].
 *
 * Each tile maps w to (w - min) / (max - min), with min and max taken per filter (over the
 * filter's shown weights: `normalize: per-filter`) or over everything shown of the layer
 * (`global`); an empty range is drawn mid-gray.
 */
export const filters = defineMethod({
  id: 'filters',
  title: 'Convolution filters',
  paper: 'Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks',
  needs: {},
  options: z.strictObject({
    enabled: z.boolean().default(true),
    layer: z.string().optional().describe('Convolution layer to show (default: the first one)'),
    normalize: z.enum(['per-filter', 'global']).default('per-filter').describe('Grey/colour scale per filter (each uses its full range) or one scale for the whole layer'),
    scale: z.number().int().min(1).max(32).default(8).describe('Each kernel pixel is drawn as scale x scale pixels'),
    maxFilters: z.number().int().positive().default(256).describe('At most this many filters are drawn'),
    layers: z.array(z.string()).default([])
      .describe('Deeper convolution layers to show as gray kernel slices: one row per output filter, one column per input channel'),
    maxChannels: z.number().int().positive().default(32)
      .describe('For the deeper layers: the first maxChannels output filters (rows) and input channels (columns)'),
  }),
  check(opts, model) {
    return [
      ...convProblem(model, 'layer', opts.layer),
      ...opts.layers.flatMap((name, i) => convProblem(model, `layers.${i}`, name)),
    ];
  },
  async run(ctx, opts) {
    const info = opts.layer ? ctx.model.layer(opts.layer) : ctx.model.firstConvLayer();
    if (!info) {
      ctx.logger.warn('filters: the model has no 2-D convolution layer; skipped');
    } else {
      await firstLayerGrid(ctx, info, opts);
    }
    for (const name of opts.layers) await channelGrid(ctx, ctx.model.layer(name), opts);
  },
});

type FilterOptions = z.infer<typeof filters.options>;

function convProblem(model: ModelAdapter, key: string, name: string | undefined): OptionProblem[] {
  const problems = layerProblem(model, key, name);
  if (problems.length === 0 && name !== undefined && !model.layer(name).conv) {
    problems.push({ key, message: `layer "${name}" is a ${model.layer(name).type}, not a 2-D convolution` });
  }
  return problems;
}

function kernelOf(ctx: MethodContext, info: LayerInfo): tf.Tensor4D | undefined {
  const kernel = ctx.model.weights(info.name)[0];
  if (!kernel || kernel.rank !== 4) {
    ctx.logger.warn(`filters: layer ${info.name} has no 4-D kernel; skipped`);
    return undefined;
  }
  return kernel as tf.Tensor4D;
}

/** The first `cout` filters and `cin` input channels of W, as [cout, kh, kw, cin]. */
async function kernelSlice(kernel: tf.Tensor4D, cin: number, cout: number): Promise<Float32Array> {
  const [kh, kw] = kernel.shape;
  const raw = tf.tidy(() => tf.transpose(kernel.slice([0, 0, 0, 0], [kh, kw, cin, cout]), [3, 0, 1, 2]));
  const data = (await raw.data()) as Float32Array;
  raw.dispose();
  return data;
}

/**
 * Tiles of `cout` kernels of `per` values each (data [cout, kh, kw, cin]), `toTiles(w, scale)` per
 * kernel, with the value -> [0, 1] scale of that kernel or of all of them (normalize), 0 at the
 * middle grey when flat. Also the range of all the values.
 */
function filterTiles(data: Float32Array, cout: number, per: number, normalize: FilterOptions['normalize'], toTiles: (w: Float32Array, scale: (v: number) => number) => Uint8Array[]) {
  const [min, max] = valueRange(data);
  const globalRange = unitScale(min, max, 0.5);
  const tiles: Uint8Array[] = [];
  for (let f = 0; f < cout; f++) {
    const w = data.subarray(f * per, (f + 1) * per);
    tiles.push(...toTiles(w, normalize === 'global' ? globalRange : unitScale(...valueRange(w), 0.5)));
  }
  return { tiles, min, max };
}

async function firstLayerGrid(ctx: MethodContext, info: LayerInfo, opts: FilterOptions): Promise<void> {
  const kernel = kernelOf(ctx, info);
  if (!kernel) return;
  const [kh, kw, cin, coutAll] = kernel.shape;
  const cout = Math.min(coutAll, opts.maxFilters);
  const data = await kernelSlice(kernel, cin, cout);
  const channels: 1 | 3 = cin === 3 ? 3 : 1;
  const { tiles, min, max } = filterTiles(data, cout, kh * kw * cin, opts.normalize, (w, scale) => {
    const values = new Float32Array(kh * kw * channels);
    for (let p = 0; p < kh * kw; p++) {
      if (channels === 3) {
        for (let c = 0; c < 3; c++) values[p * 3 + c] = w[p * cin + (ctx.settings.channelOrder === 'bgr' ? 2 - c : c)];
      } else {
        let s = 0;
        for (let c = 0; c < cin; c++) s += w[p * cin + c];
        values[p] = s / cin;
      }
    }
    return [grayTile(values, scale)];
  });
  const grid = tileGrid(tiles, kw, kh, channels, { scale: opts.scale, gap: 2 });
  await ctx.out.image('filters', info.name, {
    id: `filters/${info.name}`,
    method: 'filters',
    layer: info.name,
    title: `${cout} filters of ${info.name} (${kh}x${kw}x${cin})`,
    alt: `Grid of the ${cout} ${kh}x${kw} convolution kernels of layer ${info.name}, ${channels === 3 ? 'in colour' : 'in gray'}, normalised ${opts.normalize}`,
    stats: { filters: cout, kernelHeight: kh, kernelWidth: kw, inputChannels: cin, normalize: opts.normalize, min, max },
  }, { ...grid, channels }, { data, shape: [cout, kh, kw, cin] });
}

async function channelGrid(ctx: MethodContext, info: LayerInfo, opts: FilterOptions): Promise<void> {
  const kernel = kernelOf(ctx, info);
  if (!kernel) return;
  const [kh, kw, cinAll, coutAll] = kernel.shape;
  const cin = Math.min(cinAll, opts.maxChannels);
  const cout = Math.min(coutAll, opts.maxChannels);
  const data = await kernelSlice(kernel, cin, cout);
  const { tiles, min, max } = filterTiles(data, cout, kh * kw * cin, opts.normalize, (w, scale) => Array.from({ length: cin }, (_, c) => {
    const slice = new Float32Array(kh * kw);
    for (let p = 0; p < kh * kw; p++) slice[p] = w[p * cin + c];
    return grayTile(slice, scale);
  }));
  const grid = tileGrid(tiles, kw, kh, 1, { columns: cin, scale: opts.scale, gap: 2 });
  await ctx.out.image('filters', `${info.name}-channels`, {
    id: `filters/${info.name}/channels`,
    method: 'filters',
    layer: info.name,
    title: `Kernel slices of ${info.name}: ${cout} of ${coutAll} filters x ${cin} of ${cinAll} input channels (${kh}x${kw})`,
    alt: `Grid of the ${kh}x${kw} kernel slices of layer ${info.name} in gray: one row per output filter (the first ${cout} of ${coutAll}), one column per input channel (the first ${cin} of ${cinAll}), normalised ${opts.normalize}`,
    stats: {
      filters: cout, totalFilters: coutAll, inputChannels: cin, totalInputChannels: cinAll,
      kernelHeight: kh, kernelWidth: kw, normalize: opts.normalize, min, max,
    },
  }, { ...grid, channels: 1 }, { data, shape: [cout, kh, kw, cin] });
}
