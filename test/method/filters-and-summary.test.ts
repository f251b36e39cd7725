import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { filters } from '../../pipeline/methods/filters.ts';
import { modelSummary } from '../../pipeline/methods/model-summary.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { decodeNpy } from '../../pipeline/npy.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';

/** conv "c1": 2 filters 2x2x3 with hand-set weights; then GAP and a 2-way dense. */
function handModel() {
  // kernel[kh][kw][cin][cout]; filter 0 ramps 0..11 over (kh, kw, cin), filter 1 is constant 5 except one -1
  const k = new Float32Array(2 * 2 * 3 * 2);
  for (let i = 0; i < 12; i++) {
    k[i * 2] = i;
    k[i * 2 + 1] = i === 4 ? -1 : 5;
  }
  const m = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [4, 4, 3], filters: 2, kernelSize: 2, name: 'c1', weights: [tf.tensor4d(k, [2, 2, 3, 2]), tf.zeros([2])] }),
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      tf.layers.dense({ units: 2, name: 'out' }),
    ],
  });
  return new LayersAdapter(m);
}

/** c1 as in handModel, then c2: 2x2, 2 -> 3 with W[di][dj][c][f] = 10f + 2(2di + dj) + c. */
function deeperModel() {
  const k1 = new Float32Array(2 * 2 * 3 * 2).map((_, i) => (i % 5) - 2);
  const k2 = new Float32Array(2 * 2 * 2 * 3);
  for (let p = 0; p < 4; p++) for (let c = 0; c < 2; c++) for (let f = 0; f < 3; f++) k2[(p * 2 + c) * 3 + f] = 10 * f + 2 * p + c;
  const m = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [4, 4, 3], filters: 2, kernelSize: 2, name: 'c1', weights: [tf.tensor4d(k1, [2, 2, 3, 2]), tf.zeros([2])] }),
      tf.layers.conv2d({ filters: 3, kernelSize: 2, name: 'c2', weights: [tf.tensor4d(k2, [2, 2, 2, 3]), tf.zeros([3])] }),
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      tf.layers.dense({ units: 2, name: 'out' }),
    ],
  });
  return new LayersAdapter(m);
}

async function context(model: LayersAdapter, logger: MemoryLogger | typeof silentLogger = silentLogger) {
  return methodContext(model, tf.zeros([0, 4, 4, 3]) as tf.Tensor4D, { classes: ['a', 'b'], targets: [], logger });
}

describe('filters', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('draws each first-layer kernel as an RGB tile, normalised per filter, and saves the raw kernel', async () => {
    const model = handModel();
    const ctx = await context(model);
    await filters.run(ctx, filters.options.parse({ scale: 1 }));
    const [a] = ctx.out.artifacts;
    expect(a.layer).toBe('c1');
    expect(a.raw?.shape).toEqual([2, 2, 2, 3]);
    const raw = decodeNpy(new Uint8Array(await readFile(join(ctx.out.staging, a.raw!.path))));
    expect(Array.from(raw.data.slice(0, 12))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // grid: 2 columns x 1 row of 2x2 tiles, gap 2 => width 2*2 + 3*2 = 10, height 2 + 2*2 = 6
    const { data, info } = await sharp(join(ctx.out.staging, a.path)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([10, 6, 3]);
    const px = (x: number, y: number) => Array.from(data.subarray((y * 10 + x) * 3, (y * 10 + x) * 3 + 3));
    // filter 0, per-filter min 0 max 11: pixel (0,0) = weights 0,1,2 -> round(v/11*255)
    expect(px(2, 2)).toEqual([0, 23, 46]);
    expect(px(3, 3)).toEqual([209, 232, 255]);
    // filter 1: min -1 max 5; pixel (1,0) holds cin weights 5,-1,5 -> 255, 0, 255
    expect(px(7, 2)).toEqual([255, 0, 255]);
    expect(px(6, 2)).toEqual([255, 255, 255]);
    // the gap is background white
    expect(px(0, 0)).toEqual([255, 255, 255]);
    model.dispose();
  });

  it('normalises over the whole layer with normalize: global', async () => {
    const model = handModel();
    const ctx = await context(model);
    await filters.run(ctx, filters.options.parse({ scale: 1, normalize: 'global' }));
    const { data } = await sharp(join(ctx.out.staging, ctx.out.artifacts[0].path)).raw().toBuffer({ resolveWithObject: true });
    const px = (x: number, y: number) => Array.from(data.subarray((y * 10 + x) * 3, (y * 10 + x) * 3 + 3));
    // global min -1, max 11: weight 5 -> round(6/12*255) = 128, -1 -> 0
    expect(px(7, 2)).toEqual([128, 0, 128]);
    expect(px(2, 2)).toEqual([21, 43, 64]);
    model.dispose();
  });

  it('draws a deeper layer as gray kernel slices (rows: filters, columns: input channels) and saves the kernel transposed', async () => {
    const model = deeperModel();
    const ctx = await context(model);
    const artifacts = await runMethod(filters, ctx, { scale: 1, layers: ['c2'] });
    expect(artifacts.map((a) => a.id)).toEqual(['filters/c1', 'filters/c2/channels']);
    const a = artifacts[1];
    expect(a).toMatchObject({ layer: 'c2', stats: { filters: 3, totalFilters: 3, inputChannels: 2, totalInputChannels: 2, kernelHeight: 2, kernelWidth: 2 } });
    // raw [c_out, kh, kw, c_in] = W transposed [3, 0, 1, 2]
    const raw = await readRaw(ctx, a);
    expect(raw.shape).toEqual([3, 2, 2, 2]);
    const expected = tf.tidy(() => tf.transpose(model.weights('c2')[0], [3, 0, 1, 2]).dataSync());
    expect(Array.from(raw.data)).toEqual(Array.from(expected));
    // filter f, input channel c, pixel p = di*2+dj holds 10f + 2p + c: per filter min 10f, max 10f + 7
    // grid: 2 columns x 3 rows of 2x2 tiles, gap 2 => 10 x 14
    const { data, info } = await sharp(join(ctx.out.staging, a.path)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([10, 14]);
    const px = (x: number, y: number) => data[y * 10 + x];
    for (let f = 0; f < 3; f++) for (let c = 0; c < 2; c++) for (let p = 0; p < 4; p++) {
      expect(px(2 + c * 4 + (p % 2), 2 + f * 4 + Math.floor(p / 2)), `f${f} c${c} p${p}`).toBe(Math.round(((2 * p + c) / 7) * 255));
    }
    expect(px(0, 0)).toBe(255);
    model.dispose();
  });

  it('normalises deeper slices over the layer with normalize: global and caps filters and channels', async () => {
    const model = deeperModel();
    const ctx = await context(model);
    const [, a] = await runMethod(filters, ctx, { scale: 1, layers: ['c2'], normalize: 'global', maxChannels: 1 });
    // the first filter and input channel only: values 2p, global range over what is shown [0, 6]
    expect(a.raw?.shape).toEqual([1, 2, 2, 1]);
    expect(Array.from((await readRaw(ctx, a)).data)).toEqual([0, 2, 4, 6]);
    const { data, info } = await sharp(join(ctx.out.staging, a.path)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([6, 6]);
    expect([data[2 * 6 + 2], data[2 * 6 + 3], data[3 * 6 + 2], data[3 * 6 + 3]]).toEqual([0, 85, 170, 255]);
    const ctx2 = await context(model);
    const [, b] = await runMethod(filters, ctx2, { scale: 1, layers: ['c2'], normalize: 'global' });
    // global min 0, max 27 over all 24 weights: filter 2, channel 1, pixel 3 = 27 -> 255; filter 1, channel 0, pixel 0 = 10
    const img = await sharp(join(ctx2.out.staging, b.path)).extractChannel(0).raw().toBuffer();
    expect(img[(2 + 8 + 1) * 10 + 2 + 4 + 1]).toBe(255);
    expect(img[(2 + 4) * 10 + 2]).toBe(Math.round((10 / 27) * 255));
    model.dispose();
  });

  it('rejects deeper layers that are not convolutions', () => {
    const model = deeperModel();
    expect(filters.check!(filters.options.parse({ layers: ['c2', 'gap'] }), model)).toEqual([{ key: 'layers.1', message: 'layer "gap" is a GlobalAveragePooling2D, not a 2-D convolution' }]);
    model.dispose();
  });

  it('rejects a layer that is not a convolution', () => {
    const model = handModel();
    expect(filters.check!(filters.options.parse({ layer: 'gap' }), model)).toEqual([{ key: 'layer', message: 'layer "gap" is a GlobalAveragePooling2D, not a 2-D convolution' }]);
    expect(filters.check!(filters.options.parse({ layer: 'c2' }), model)[0].message).toMatch(/^no layer "c2"; nearest: c1, /);
    model.dispose();
  });
});

describe('model-summary', () => {
  it('lists every layer and its parameters add up to model.countParams()', async () => {
    const model = handModel();
    const logger = new MemoryLogger();
    const ctx = await context(model, logger);
    await modelSummary.run(ctx, modelSummary.options.parse({}));
    const [a] = ctx.out.artifacts;
    const table = JSON.parse(await readFile(join(ctx.out.staging, a.path), 'utf8'));
    expect(table.layers.map((l: { name: string; params: number }) => [l.name, l.params])).toEqual([['c1', 2 * 2 * 3 * 2 + 2], ['gap', 0], ['out', 2 * 2 + 2]]);
    expect(table.totalParams).toBe(32);
    expect(a.stats).toMatchObject({ totalParams: 32, layerParamsSum: 32 });
    expect(logger.records.filter((r) => r.level === 'warn')).toEqual([]);
    model.dispose();
  });
});
