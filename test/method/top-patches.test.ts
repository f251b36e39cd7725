import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { batches, type ImageRef, type Preprocessing } from '../../pipeline/data.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { defaultLayers, type Hit, pickChannels, ranksBefore, streamTopActivations, TopK, topPatches } from '../../pipeline/methods/top-patches.ts';
import type { DatasetAccess } from '../../pipeline/methods/types.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { receptiveField } from '../../pipeline/receptive-field.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';

const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures');
const haveFixtures = existsSync(resolve(FIXTURES, 'darknet-tiny/model.json')) && existsSync(resolve(FIXTURES, 'photos'));
if (!haveFixtures) console.warn(`skipping the Darknet Tiny top-patches test: ${FIXTURES} is absent`);

let tmp: string;
beforeAll(async () => {
  await initBackend('wasm', silentLogger);
  tmp = await mkdtemp(join(tmpdir(), 'convlens-top-patches-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const hit = (image: number, y: number, x: number, value: number): Hit => ({ image, y, x, value });

/** Deterministic values in [0, 1). */
function noise(n: number, seed: number): number[] {
  let a = seed >>> 0;
  return Array.from({ length: n }, () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 2 ** 32;
  });
}

describe('TopK', () => {
  it('keeps exactly the k best of a stream, never more than k entries, best first', () => {
    const k = 7;
    const values = noise(2000, 3).map((v) => Math.round(v * 50) / 50); // many ties
    const heap = new TopK(k);
    const all: Hit[] = [];
    values.forEach((v, i) => {
      const h = hit(i % 37, Math.floor(i / 37) % 5, i % 11, v);
      all.push(h);
      heap.offer(h.image, h.y, h.x, h.value);
      expect(heap.size).toBeLessThanOrEqual(k);
    });
    expect(heap.size).toBe(k);
    const expected = [...all].sort((a, b) => (ranksBefore(a, b) ? -1 : 1)).slice(0, k);
    expect(heap.sorted()).toEqual(expected);
  });

  it('orders by value, then image index, row and column; ignores NaN', () => {
    const heap = new TopK(4);
    heap.offer(5, 0, 0, 1);
    heap.offer(2, 3, 3, 1);
    heap.offer(2, 1, 4, 1);
    heap.offer(9, 0, 0, NaN);
    heap.offer(1, 0, 0, 0.5);
    heap.offer(0, 0, 0, 0.25);
    heap.offer(2, 1, 2, 1);
    expect(heap.sorted()).toEqual([hit(2, 1, 2, 1), hit(2, 1, 4, 1), hit(2, 3, 3, 1), hit(5, 0, 0, 1)]);
  });

  it('picks channels: a count spread evenly, all, a list; capped by maxChannels', () => {
    expect(pickChannels(4, 10, 256)).toEqual({ channels: [0, 2, 5, 7], dropped: 0 });
    expect(pickChannels(16, 3, 256)).toEqual({ channels: [0, 1, 2], dropped: 0 });
    expect(pickChannels('all', 6, 3)).toEqual({ channels: [0, 2, 4], dropped: 3 });
    expect(pickChannels([5, 1, 5], 8, 256)).toEqual({ channels: [5, 1], dropped: 0 });
  });
});

// ---- a planted dataset: the layer "id" is the input itself (1x1 conv, identity kernel) ----

const H = 6;
const W = 5;
const N = 10;

/** img [6,5,2] -> id (1x1 conv, identity) -> pool (2x2 max) -> GAP -> dense 2. */
function identityModel(): LayersAdapter {
  const input = tf.input({ shape: [H, W, 2] });
  const id = tf.layers.conv2d({ name: 'id', filters: 2, kernelSize: 1, useBias: false, weights: [tf.tensor4d([1, 0, 0, 1], [1, 1, 2, 2])] }).apply(input) as tf.SymbolicTensor;
  const pool = tf.layers.maxPooling2d({ name: 'pool', poolSize: 2 }).apply(id) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({}).apply(pool) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 2, name: 'out' }).apply(gap) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

/** Background in [0, 0.5); channel 0 and 1 maxima planted at known places. */
function plantedImages(): Float32Array[] {
  const imgs = Array.from({ length: N }, (_, i) => Float32Array.from(noise(H * W * 2, 100 + i), (v) => v * 0.5));
  const set = (i: number, y: number, x: number, c: number, v: number) => { imgs[i][(y * W + x) * 2 + c] = v; };
  set(7, 2, 3, 0, 0.9);
  set(2, 4, 0, 0, 0.9); // tie with image 7: image 2 first
  set(5, 0, 0, 0, 0.8);
  set(5, 5, 4, 0, 0.8); // same image, same value: row 0 first
  set(9, 1, 1, 1, 5);
  set(0, 3, 4, 1, 4);
  set(4, 0, 1, 1, 3);
  set(4, 5, 4, 1, 3.5); // image 4's strongest
  return imgs;
}

function memoryDataset(images: Float32Array[], shape: [number, number, number]): DatasetAccess & { sizes: number[] } {
  const refs: ImageRef[] = images.map((_, i) => ({ id: `img-${i}`, path: `/nowhere/img-${i}.png`, source: `img-${i}.png` }));
  const per = shape[0] * shape[1] * shape[2];
  const sizes: number[] = [];
  return {
    refs,
    sizes,
    async *batches(batchSize = 4) {
      for (let start = 0; start < images.length; start += batchSize) {
        const part = images.slice(start, start + batchSize);
        const data = new Float32Array(part.length * per);
        part.forEach((im, i) => data.set(im, i * per));
        sizes.push(part.length);
        yield { input: tf.tensor4d(data, [part.length, ...shape]), refs: refs.slice(start, start + part.length), display: [], start };
      }
    },
  };
}

describe('streamTopActivations', () => {
  it('finds the planted maxima, identically for batch sizes 1, 3 and all at once, in one forward pass per batch', async () => {
    const model = identityModel();
    const forwards: string[][] = [];
    const counting: Pick<ModelAdapter, 'forward' | 'layer' | 'head'> = {
      forward: (x, names) => { forwards.push([...(names ?? [])]); return model.forward(x, names); },
      layer: (n) => model.layer(n),
      head: model.head,
    };
    const plans = [{ layer: 'id', channels: [0, 1] }, { layer: 'pool', channels: [1] }];
    const results: Hit[][][][] = [];
    for (const batchSize of [1, 3, N]) {
      const ds = memoryDataset(plantedImages(), [H, W, 2]);
      forwards.length = 0;
      const before = tf.memory().numTensors;
      const heaps = await streamTopActivations(counting, ds, plans, { k: 4, batchSize, onePerImage: true });
      expect(tf.memory().numTensors).toBe(before);
      expect(forwards).toEqual(ds.sizes.map(() => ['id', 'pool']));
      expect(ds.sizes.length).toBe(Math.ceil(N / batchSize));
      heaps.flat().forEach((h) => expect(h.size).toBe(4));
      results.push(heaps.map((hs) => hs.map((h) => h.sorted())));
    }
    const [one, three, all] = results;
    expect(three).toEqual(one);
    expect(all).toEqual(one);
    const v = (x: number) => Math.fround(x);
    expect(one[0][0]).toEqual([hit(2, 4, 0, v(0.9)), hit(7, 2, 3, v(0.9)), hit(5, 0, 0, v(0.8)), one[0][0][3]]);
    expect(one[0][0][3].value).toBeLessThan(0.5);
    expect(one[0][1]).toEqual([hit(9, 1, 1, 5), hit(0, 3, 4, 4), hit(4, 5, 4, 3.5), one[0][1][3]]);
    // pool 2x2 of channel 1 (6x5 -> 3x2): image 9's 5 at (1,1) -> (0,0); column 4 is cut off by the valid pool, so image 0's 4
    // and image 4's 3.5 are not seen, and image 4's 3 at (0,1) comes second
    expect(one[1][0].slice(0, 2)).toEqual([hit(9, 0, 0, 5), hit(4, 0, 0, 3)]);
    model.dispose();
  });

  it('with onePerImage false, every location competes', async () => {
    const model = identityModel();
    const heaps = await streamTopActivations(model, memoryDataset(plantedImages(), [H, W, 2]), [{ layer: 'id', channels: [0, 1] }], { k: 5, batchSize: 4, onePerImage: false });
    const v = (x: number) => Math.fround(x);
    expect(heaps[0][0].sorted().slice(0, 4)).toEqual([hit(2, 4, 0, v(0.9)), hit(7, 2, 3, v(0.9)), hit(5, 0, 0, v(0.8)), hit(5, 5, 4, v(0.8))]);
    expect(heaps[0][1].sorted()).toEqual([hit(9, 1, 1, 5), hit(0, 3, 4, 4), hit(4, 5, 4, 3.5), hit(4, 0, 1, 3), heaps[0][1].sorted()[4]]);
    model.dispose();
  });
});

// ---- the method end to end on images in a folder ----

/**
 * img [8,8,1] -> c1: 3x3 same conv, 2 filters: 0 = the centre pixel, 1 = minus the centre pixel
 * -> mp (2x2 max) -> c2 (3x3 same conv, 3 filters) -> GAP -> dense 2.
 */
function pixelModel(): LayersAdapter {
  const k1 = new Float32Array(3 * 3 * 2);
  k1[4 * 2] = 1;
  k1[4 * 2 + 1] = -1;
  const m = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 1], name: 'c1', filters: 2, kernelSize: 3, padding: 'same', weights: [tf.tensor4d(k1, [3, 3, 1, 2]), tf.zeros([2])] }),
      tf.layers.maxPooling2d({ name: 'mp', poolSize: 2 }),
      tf.layers.conv2d({ name: 'c2', filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      tf.layers.dense({ units: 2, name: 'out', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
    ],
  });
  return new LayersAdapter(m);
}

/** Image i: background 10 + i, one bright pixel 100 + 15 i at BRIGHT[i]. */
const BRIGHT: [number, number][] = [[3, 3], [0, 0], [7, 2], [5, 7], [1, 0], [0, 7]];

async function writeImages(dir: string): Promise<ImageRef[]> {
  return Promise.all(BRIGHT.map(async ([y, x], i) => {
    const px = new Uint8Array(64).fill(10 + i);
    px[y * 8 + x] = 100 + 15 * i;
    const path = join(dir, `img${i}.png`);
    await sharp(Buffer.from(px), { raw: { width: 8, height: 8, channels: 1 } }).png().toFile(path);
    return { id: `img${i}`, path, source: `class-a/img${i}.png`, label: i % 2, labelName: i % 2 ? 'b' : 'a' };
  }));
}

function folderDataset(refs: ImageRef[], pre: Preprocessing): DatasetAccess {
  return {
    refs,
    async *batches(batchSize = 4) {
      let start = 0;
      for await (const b of batches(refs, pre, batchSize)) {
        yield { input: tf.tensor4d(b.input, b.shape), refs: b.refs, display: b.display, start };
        start += b.refs.length;
      }
    },
  };
}

describe('top-patches', () => {
  it('writes a grid per layer and channel, the raw [k, 4] tables and the JSON, reloading the winners from disk', async () => {
    const model = pixelModel();
    const dir = await mkdtemp(join(tmp, 'images-'));
    const refs = await writeImages(dir);
    const pre: Preprocessing = { size: [8, 8], channels: 1, channelOrder: 'rgb', scale: 1 / 255, mean: [0], std: [1], resize: 'fill' };
    const logger = new MemoryLogger();
    const ctx = await methodContext(model, tf.zeros([0, 8, 8, 1]) as tf.Tensor4D, { targets: [], dataset: folderDataset(refs, pre), preprocessing: pre, logger });
    const artifacts = await runMethod(topPatches, ctx, { layers: ['c1', 'c2'], channels: 'all', k: 4, batchSize: 4 });
    expect(logger.records.filter((r) => r.level === 'warn')).toEqual([]);
    const images = artifacts.filter((a) => a.kind === 'image');
    const data = artifacts.filter((a) => a.kind === 'data');
    expect(images.map((a) => a.id)).toEqual(['top-patches/c1/0', 'top-patches/c1/1', 'top-patches/c2/0', 'top-patches/c2/1', 'top-patches/c2/2']);
    expect(data.map((a) => a.id)).toEqual(['top-patches/c1/patches', 'top-patches/c2/patches']);
    for (const a of artifacts) {
      expect(a.method).toBe('top-patches');
      expect(a.title.length).toBeGreaterThan(10);
    }

    // c1 channel 0 is the pixel: the four brightest images at their bright pixel, in input units
    const c1 = images[0];
    const raw = await readRaw(ctx, c1);
    expect(raw.shape).toEqual([4, 4]);
    const expected = [5, 4, 3, 2].map((i) => [i, BRIGHT[i][0], BRIGHT[i][1], Math.fround((100 + 15 * i) / 255)]);
    expect(Array.from(raw.data)).toEqual(expected.flat().map((v) => Math.fround(v)));
    expect(c1.layer).toBe('c1');
    expect(c1.stats).toMatchObject({ channel: 0, patches: 4, rfHeight: 3, rfWidth: 3, mapHeight: 8, mapWidth: 8, datasetImages: 6 });
    // channel 1 is minus the pixel: the maxima are the darkest backgrounds, first location of image 0 (its background 10 is the darkest)
    const raw1 = await readRaw(ctx, images[1]);
    expect(Array.from(raw1.data.slice(0, 4))).toEqual([0, 0, 0, Math.fround(-10 / 255)]);

    // the grid: 2x2 tiles of the 3x3 field enlarged 22x (66 px), gap 2; tile 0 is image 5 at (0, 7):
    // its field rows -1..1, columns 6..8, so the top row and the right column are outside the image (gray)
    const grid = await sharp(join(ctx.out.staging, c1.path)).raw().toBuffer({ resolveWithObject: true });
    expect([grid.info.width, grid.info.height]).toEqual([2 * 66 + 3 * 2, 2 * 66 + 3 * 2]);
    const px = (tile: number, r: number, c: number) => {
      const x = 2 + (tile % 2) * 68 + c * 22 + 11;
      const y = 2 + Math.floor(tile / 2) * 68 + r * 22 + 11;
      return Array.from(grid.data.subarray((y * grid.info.width + x) * 3, (y * grid.info.width + x) * 3 + 3));
    };
    expect(px(0, 0, 1)).toEqual([128, 128, 128]);
    expect(px(0, 1, 2)).toEqual([128, 128, 128]);
    expect(px(0, 1, 1)).toEqual([175, 175, 175]); // the bright pixel 100 + 15 * 5
    expect(px(0, 1, 0)).toEqual([15, 15, 15]); // background of image 5
    expect(px(0, 2, 0)).toEqual([15, 15, 15]);
    // tile 1: image 4 at (1, 0): its field's left column is outside
    expect(px(1, 1, 1)).toEqual([160, 160, 160]);
    expect(px(1, 0, 0)).toEqual([128, 128, 128]);
    expect(px(1, 0, 1)).toEqual([14, 14, 14]);
    expect(px(1, 2, 2)).toEqual([14, 14, 14]);

    // the JSON table
    const table = JSON.parse(await readFile(join(ctx.out.staging, data[0].path), 'utf8'));
    expect(table.layer).toBe('c1');
    expect(table.featureMap).toEqual({ height: 8, width: 8, channels: 2 });
    expect(table.receptiveField).toEqual({ rows: { jump: 1, start: -1, size: 3 }, columns: { jump: 1, start: -1, size: 3 } });
    expect(table.channels.map((c: { channel: number }) => c.channel)).toEqual([0, 1]);
    const first = table.channels[0].patches;
    expect(first.map((p: { source: string }) => p.source)).toEqual([5, 4, 3, 2].map((i) => `class-a/img${i}.png`));
    expect(first[0]).toEqual({
      rank: 1, imageIndex: 5, id: 'img5', source: 'class-a/img5.png', label: 1, labelName: 'b', y: 0, x: 7, value: Math.fround(175 / 255),
      box: { top: 0, left: 6, height: 2, width: 2 }, rf: { top: -1, left: 6, height: 3, width: 3 },
    });
    expect(table.channels[0].grid).toBe('top-patches/c1/0');

    // c2 (after a 2x2 pool and a 3x3 conv): field 3 + 2 + 2 * 2 = 8 px with jump 2; raw values agree with a direct forward
    const c2 = JSON.parse(await readFile(join(ctx.out.staging, data[1].path), 'utf8'));
    expect(c2.receptiveField.rows).toEqual({ jump: 2, start: -3, size: 8 });
    const x = tf.tensor4d((await folderBatch(refs, pre)), [6, 8, 8, 1]);
    const { logits, activations } = model.forward(x, ['c2']);
    const act = (await activations.get('c2')!.array()) as number[][][][];
    tf.dispose([x, logits, ...activations.values()]);
    for (const [q, a] of images.slice(2).entries()) {
      const rows = await readRaw(ctx, a);
      for (let r = 0; r < rows.shape[0]; r++) {
        const [i, y, xx, value] = Array.from(rows.data.slice(r * 4, r * 4 + 4));
        expect(value).toBeCloseTo(act[i][y][xx][q], 5);
        // value is the image's maximum for the channel
        expect(value).toBeCloseTo(Math.max(...act[i].flat().map((v) => v[q])), 5);
      }
    }
    model.dispose();
  });

  it('defaults: a middle layer and the last spatial layer; check rejects non-spatial layers and channels out of range', () => {
    const model = pixelModel();
    expect(defaultLayers(model)).toEqual(['mp', 'c2']);
    expect(topPatches.check!(topPatches.options.parse({ layers: ['gap'] }), model)[0].message).toMatch(/^layer "gap" has output shape \[null, 3\]; top patches need a spatial layer/);
    expect(topPatches.check!(topPatches.options.parse({ layers: ['c1'], channels: [1, 2, 7] }), model)).toEqual([{ key: 'channels', message: 'channels 2, 7 out of range for layer "c1" (2 channels, 0-1)' }]);
    expect(topPatches.check!(topPatches.options.parse({ layers: ['c3'] }), model)[0]).toMatchObject({ key: 'layers' });
    expect(topPatches.check!(topPatches.options.parse({}), model)).toEqual([]);
    model.dispose();
  });

  it.skipIf(!haveFixtures)('finds each channel\'s strongest photo on the real Darknet Tiny', async () => {
    const { adapter: model } = await loadModel(resolve(FIXTURES, 'darknet-tiny'));
    const photos = readdirSync(resolve(FIXTURES, 'photos')).sort();
    const refs: ImageRef[] = photos.map((f) => ({ id: f.replace(/\W+/g, '-'), path: resolve(FIXTURES, 'photos', f), source: f }));
    const pre: Preprocessing = { size: [224, 224], channels: 3, channelOrder: 'rgb', scale: 1 / 255, mean: [0], std: [1], resize: 'fill' };
    const ctx = await methodContext(model, tf.zeros([0, 224, 224, 3]) as tf.Tensor4D, { targets: [], dataset: folderDataset(refs, pre), preprocessing: pre });
    const channels = [0, 5];
    const artifacts = await runMethod(topPatches, ctx, { channels, k: 3 });
    expect(defaultLayers(model)).toEqual(['leaky_re_lu_8', 'leaky_re_lu_15']);
    expect(artifacts.map((a) => a.id)).toEqual([
      'top-patches/leaky_re_lu_8/0', 'top-patches/leaky_re_lu_8/5', 'top-patches/leaky_re_lu_8/patches',
      'top-patches/leaky_re_lu_15/0', 'top-patches/leaky_re_lu_15/5', 'top-patches/leaky_re_lu_15/patches',
    ]);
    // 4 max pools 2x2/2 'same' on even sizes: jump 16 at leaky_re_lu_15
    expect(receptiveField(model, 'leaky_re_lu_15').affine[0]).toMatchObject({ jump: 16 });
    expect(artifacts[3].stats).toMatchObject({ rfHeight: 134, jumpY: 16, mapHeight: 14 });
    // top-1 per channel = the largest activation over the photos, by a direct forward
    const x = tf.tensor4d(await folderBatch(refs, pre), [refs.length, 224, 224, 3]);
    const { logits, activations } = model.forward(x, ['leaky_re_lu_15']);
    const act = activations.get('leaky_re_lu_15')!;
    const maxes = (await tf.tidy(() => tf.max(tf.gather(act, channels, 3), [1, 2])).array()) as number[][];
    tf.dispose([x, logits, act]);
    for (const [q, a] of [artifacts[3], artifacts[4]].entries()) {
      const rows = await readRaw(ctx, a);
      const perImage = maxes.map((m) => m[q]);
      const best = perImage.indexOf(Math.max(...perImage));
      expect(rows.data[0]).toBe(best);
      expect(rows.data[3]).toBeCloseTo(perImage[best], 4);
      expect(rows.data[7]).toBeLessThanOrEqual(rows.data[3]);
    }
    model.dispose();
  }, 60_000);
});

async function folderBatch(refs: ImageRef[], pre: Preprocessing): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for await (const b of batches(refs, pre, refs.length)) parts.push(b.input);
  return parts[0];
}
