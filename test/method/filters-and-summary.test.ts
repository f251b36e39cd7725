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
import { methodContext } from '../helpers/method-context.ts';

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
