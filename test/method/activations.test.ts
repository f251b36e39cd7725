import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { activations, defaultActivationLayers } from '../../pipeline/methods/activations.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';
import { vals } from '../helpers/tiny-models.ts';

const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures');
const haveFixtures = existsSync(resolve(FIXTURES, 'darknet-tiny/model.json'));
if (!haveFixtures) console.warn(`skipping the Darknet Tiny activations test: ${FIXTURES} is absent`);

/**
 * 8x8x2 -> c1 (3x3 same, 3) -> pool (2x2) -> c2 (3x3 same, 5, relu) -> gap -> dense 3.
 * Seeded weights; the values only need to be varied.
 */
function smallModel() {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return new LayersAdapter(tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 2], filters: 3, kernelSize: 3, padding: 'same', name: 'c1', kernelInitializer: init(1), biasInitializer: tf.initializers.constant({ value: 0.1 }) }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }),
      tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2', kernelInitializer: init(2), biasInitializer: tf.initializers.constant({ value: 0.2 }) }),
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      tf.layers.dense({ units: 3, name: 'fc', kernelInitializer: init(3) }),
    ],
  }));
}

/**
 * A NiN/Darknet-shaped model: c1, c2, act2 (LeakyReLU), c3 (1x1), c4, act4 (ReLU), then a 1x1
 * conv "head" to 5 class maps and global pooling.
 */
function darknetShaped() {
  const conv = (filters: number, k: number, name: string, extra = {}) => tf.layers.conv2d({ filters, kernelSize: k, padding: 'same', name, ...extra });
  return new LayersAdapter(tf.sequential({
    layers: [
      conv(3, 3, 'c1', { inputShape: [8, 8, 2] }),
      conv(4, 3, 'c2'),
      tf.layers.leakyReLU({ name: 'act2' }),
      conv(4, 1, 'c3'),
      conv(4, 3, 'c4'),
      tf.layers.activation({ activation: 'relu', name: 'act4' }),
      conv(5, 1, 'head'),
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
    ],
  }));
}

/** Counts forward calls and the layers asked for. */
function counting(model: ModelAdapter) {
  const calls: string[][] = [];
  const proxy = new Proxy(model, {
    get(target, prop) {
      if (prop === 'forward') return (x: tf.Tensor4D, layers?: readonly string[]) => { calls.push([...(layers ?? [])]); return target.forward(x, layers); };
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { model: proxy, calls };
}

describe('activations', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('selects the convolutions up to the last spatial layer plus that layer, spread over depth', () => {
    const model = darknetShaped();
    expect(model.lastSpatialLayer().name).toBe('act4');
    expect(defaultActivationLayers(model, 6)).toEqual(['c1', 'c2', 'c3', 'c4', 'act4']);
    // indices round(i * 4 / (m - 1))
    expect(defaultActivationLayers(model, 3)).toEqual(['c1', 'c3', 'act4']);
    expect(defaultActivationLayers(model, 4)).toEqual(['c1', 'c2', 'c4', 'act4']);
    expect(defaultActivationLayers(model, 1)).toEqual(['act4']);
    expect(defaultActivationLayers(smallModel(), 6)).toEqual(['c1', 'c2']);
    model.dispose();
  });

  it('checks layer names, spatial outputs and the overlay channel', () => {
    const model = smallModel();
    const check = (o: Record<string, unknown>) => activations.check!(activations.options.parse(o), model);
    expect(check({})).toEqual([]);
    expect(check({ layers: ['c1', 'c9'] })[0]).toMatchObject({ key: 'layers.1', message: expect.stringMatching(/^no layer "c9"; nearest: c1/) });
    expect(check({ layers: ['gap'] })).toEqual([{ key: 'layers.0', message: 'layer "gap" has output shape [null, 5]; activation maps need a spatial layer [batch, height, width, channels]' }]);
    expect(check({ overlayChannel: 4 })).toEqual([{ key: 'overlayChannel', message: 'channel 4 is out of range for layer "c1", which has 3 channels (0-2)' }]);
    expect(check({ overlayChannel: 4, layers: ['c2'] })).toEqual([]);
    model.dispose();
  });

  it('saves every layer\'s activation from one forward pass per batch, the channel grid and the mean map', async () => {
    const base = smallModel();
    const { model, calls } = counting(base);
    const input = tf.tensor4d(vals(3 * 8 * 8 * 2, 5, 1), [3, 8, 8, 2]);
    const ctx = await methodContext(model, input, { targets: [0, 1, 2] });
    ctx.settings.batchSize = 2;
    const artifacts = await runMethod(activations, ctx, { maxChannels: 2 });
    expect(calls).toEqual([['c1', 'c2'], ['c1', 'c2']]);
    // expected values from the adapter directly
    const { logits, activations: acts } = base.forward(input, ['c1', 'c2']);
    const expected = new Map([...acts].map(([k, v]) => [k, v.arraySync() as number[][][][]]));
    tf.dispose([logits, ...acts.values()]);
    const dims = { c1: [8, 8, 3], c2: [4, 4, 5] } as const;
    for (let i = 0; i < 3; i++) {
      for (const layer of ['c1', 'c2'] as const) {
        const [h, w, K] = dims[layer];
        const a = expected.get(layer)![i];
        const grid = artifacts.find((x) => x.id === `activations/s${i}/${layer}/channels`)!;
        expect(grid).toMatchObject({ method: 'activations', image: `s${i}`, layer, stats: { channels: K, shown: 2, height: h, width: w } });
        const raw = await readRaw(ctx, grid);
        expect(raw.shape).toEqual([h, w, K]);
        expect(Array.from(raw.data)).toEqual(Array.from(new Float32Array(a.flat(2))));
        // 2 tiles of w x h, scaled round(48 / max(h, w)) (6 for c1, 12 for c2), in 2 columns, gap 1
        const scale = Math.round(48 / Math.max(h, w));
        expect(grid.stats?.tileScale).toBe(scale);
        expect([grid.width, grid.height]).toEqual([2 * w * scale + 3, h * scale + 2]);
        // tile 1 (channel 1): (v - min) / (max - min) over that channel
        const ch = a.flat().map((px) => px[1]);
        const [lo, hi] = [Math.min(...ch), Math.max(...ch)];
        const { data: png, info } = await sharp(join(ctx.out.staging, grid.path)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
        expect(info.channels).toBe(1);
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            const px = png[(1 + y * scale) * info.width + (1 + w * scale + 1) + x * scale];
            expect(px, `${layer} s${i} (${y},${x})`).toBe(Math.round(((a[y][x][1] - lo) / (hi - lo)) * 255));
          }
        }
        const heat = artifacts.find((x) => x.id === `activations/s${i}/${i}-${layer}/heatmap`)!;
        expect(heat).toMatchObject({ layer, image: `s${i}`, width: 8, height: 8, stats: { mapHeight: h, mapWidth: w, overlayChannel: 'mean' } });
        const mean = await readRaw(ctx, heat);
        expect(mean.shape).toEqual([h, w]);
        a.flat().forEach((px, p) => expect(mean.data[p]).toBeCloseTo(px.reduce((s, v) => s + v, 0) / K, 6));
        expect(artifacts.some((x) => x.id === `activations/s${i}/${i}-${layer}/overlay`)).toBe(true);
      }
    }
    expect(artifacts).toHaveLength(3 * 2 * 3);
    input.dispose();
    base.dispose();
  });

  it('overlays one channel with overlayChannel: k', async () => {
    const model = smallModel();
    const input = tf.tensor4d(vals(8 * 8 * 2, 9, 1), [1, 8, 8, 2]);
    const ctx = await methodContext(model, input, { targets: [0] });
    const artifacts = await runMethod(activations, ctx, { layers: ['c2'], overlayChannel: 3, tileScale: 1 });
    const { logits, activations: acts } = model.forward(input, ['c2']);
    const a = acts.get('c2')!.arraySync() as number[][][][];
    tf.dispose([logits, ...acts.values()]);
    const heat = artifacts.find((x) => x.id === 'activations/s0/0-c2/heatmap')!;
    expect(heat.stats?.overlayChannel).toBe('3');
    expect(Array.from((await readRaw(ctx, heat)).data)).toEqual(Array.from(new Float32Array(a[0].flat().map((px) => px[3]))));
    // 5 channels, 3 columns x 2 rows of 4x4 tiles at scale 1, gap 1
    const grid = artifacts.find((x) => x.id === 'activations/s0/c2/channels')!;
    expect([grid.width, grid.height]).toEqual([3 * 4 + 4, 2 * 4 + 3]);
    input.dispose();
    model.dispose();
  });

  it.skipIf(!haveFixtures)('runs on Darknet Tiny for two layers', async () => {
    const { adapter: model } = await loadModel(resolve(FIXTURES, 'darknet-tiny'));
    const { data } = await sharp(resolve(FIXTURES, 'photos/chelsea.png')).removeAlpha().resize(224, 224, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    const input = tf.tensor4d(Float32Array.from(data, (v) => v / 255), [1, 224, 224, 3]);
    const ctx = await methodContext(model, input);
    const layers = [model.firstConvLayer()!.name, model.lastSpatialLayer().name];
    expect(layers).toEqual(['conv2d_1', 'leaky_re_lu_15']);
    const artifacts = await runMethod(activations, ctx, { layers });
    expect(artifacts).toHaveLength(2 * 3);
    for (const layer of layers) {
      const grid = artifacts.find((a) => a.id === `activations/s0/${layer}/channels`)!;
      const raw = await readRaw(ctx, grid);
      expect(raw.shape).toEqual(model.layer(layer).outputShape.slice(1));
      expect(raw.data.every(Number.isFinite)).toBe(true);
      const heat = artifacts.find((a) => a.layer === layer && a.id.endsWith('/heatmap'))!;
      const mean = Array.from((await readRaw(ctx, heat)).data);
      expect(Math.max(...mean)).toBeGreaterThan(Math.min(...mean));
    }
    expect(artifacts.find((a) => a.id === 'activations/s0/leaky_re_lu_15/channels')?.raw?.shape).toEqual([14, 14, 128]);
    input.dispose();
    model.dispose();
  });
});
