import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { tileGrid } from '../render.ts';
import { defineMethod, layerProblem } from './types.ts';

/**
 * First-layer filters (Krizhevsky et al. 2012, fig. 3; Zeiler & Fergus 2014): the kernel
 * W [kh, kw, c_in, c_out] of a 2-D convolution shown as one kh x kw tile per output channel.
 * c_in = 3: an RGB tile (BGR models are flipped to RGB); c_in = 1: gray; otherwise the mean over
 * input channels, in gray. Each tile maps w to (w - min) / (max - min), with min and max taken
 * per filter (`normalize: per-filter`) or over the whole layer (`global`).
 * Raw data: the kernel as [c_out, kh, kw, c_in].
 */
export const filters = defineMethod({
  id: 'filters',
  title: 'First-layer filters',
  paper: 'Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks',
  needs: {},
  options: z.strictObject({
    enabled: z.boolean().default(true),
    layer: z.string().optional().describe('Convolution layer to show (default: the first one)'),
    normalize: z.enum(['per-filter', 'global']).default('per-filter'),
    scale: z.number().int().min(1).max(32).default(8).describe('Each kernel pixel is drawn as scale x scale pixels'),
    maxFilters: z.number().int().positive().default(256),
  }),
  check(opts, model) {
    const problems = layerProblem(model, 'layer', opts.layer);
    if (problems.length === 0 && opts.layer !== undefined && !model.layer(opts.layer).conv) {
      problems.push({ key: 'layer', message: `layer "${opts.layer}" is a ${model.layer(opts.layer).type}, not a 2-D convolution` });
    }
    return problems;
  },
  async run(ctx, opts) {
    const info = opts.layer ? ctx.model.layer(opts.layer) : ctx.model.firstConvLayer();
    if (!info) {
      ctx.logger.warn('filters: the model has no 2-D convolution layer; skipped');
      return;
    }
    const kernel = ctx.model.weights(info.name)[0];
    if (!kernel || kernel.rank !== 4) {
      ctx.logger.warn(`filters: layer ${info.name} has no 4-D kernel; skipped`);
      return;
    }
    const [kh, kw, cin, coutAll] = kernel.shape;
    const cout = Math.min(coutAll, opts.maxFilters);
    const raw = tf.tidy(() => tf.transpose(kernel.slice([0, 0, 0, 0], [kh, kw, cin, cout]), [3, 0, 1, 2]));
    const data = (await raw.data()) as Float32Array;
    raw.dispose();
    const per = kh * kw * cin;
    const channels: 1 | 3 = cin === 3 ? 3 : 1;
    const range = (lo: number, hi: number) => (v: number) => (hi > lo ? (v - lo) / (hi - lo) : 0.5);
    const globalRange = range(Math.min(...data), Math.max(...data));
    const tiles: Uint8Array[] = [];
    for (let f = 0; f < cout; f++) {
      const w = data.subarray(f * per, (f + 1) * per);
      const scale = opts.normalize === 'global' ? globalRange : range(Math.min(...w), Math.max(...w));
      const tile = new Uint8Array(kh * kw * channels);
      for (let p = 0; p < kh * kw; p++) {
        if (channels === 3) {
          for (let c = 0; c < 3; c++) {
            const src = ctx.settings.channelOrder === 'bgr' ? 2 - c : c;
            tile[p * 3 + c] = Math.round(scale(w[p * cin + src]) * 255);
          }
        } else {
          let s = 0;
          for (let c = 0; c < cin; c++) s += w[p * cin + c];
          tile[p] = Math.round(scale(s / cin) * 255);
        }
      }
      tiles.push(tile);
    }
    const grid = tileGrid(tiles, kw, kh, channels, { scale: opts.scale, gap: 2 });
    await ctx.out.image('filters', info.name, {
      id: `filters/${info.name}`,
      method: 'filters',
      layer: info.name,
      title: `${cout} filters of ${info.name} (${kh}x${kw}x${cin})`,
      alt: `Grid of the ${cout} ${kh}x${kw} convolution kernels of layer ${info.name}, ${channels === 3 ? 'in colour' : 'in gray'}, normalised ${opts.normalize}`,
      stats: { filters: cout, kernelHeight: kh, kernelWidth: kw, inputChannels: cin, normalize: opts.normalize, min: Math.min(...data), max: Math.max(...data) },
    }, { ...grid, channels }, { data, shape: [cout, kh, kw, cin] });
  },
});
