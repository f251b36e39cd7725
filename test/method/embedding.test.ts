import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import type { ImageRef } from '../../pipeline/data.ts';
import { pca } from '../../pipeline/embedding/pca.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { embedding, featureLayer, thumbnailPng } from '../../pipeline/methods/embedding.ts';
import type { DatasetAccess, MethodContext } from '../../pipeline/methods/types.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { methodContext, readRaw, runMethod, type TestContext } from '../helpers/method-context.ts';
import { gaussian } from '../../pipeline/random.ts';

const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures');
const haveFixtures = existsSync(resolve(FIXTURES, 'darknet-tiny/model.json')) && existsSync(resolve(FIXTURES, 'photos'));
if (!haveFixtures) console.warn(`skipping the Darknet Tiny embedding test: ${FIXTURES} is absent`);

const H = 6;
const W = 6;

/** 6x6x1 -> conv "c1" (4 filters, relu) -> GAP "gap" -> dense "out" (3 classes, softmax); seeded weights. */
function tinyModel() {
  const input = tf.input({ shape: [H, W, 1] });
  const c1 = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(c1) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: 'softmax', name: 'out', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(gap) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

/** n images in [0, 1]: class c has a bright 2x2 block at a class-specific place, plus noise. */
function images(n: number) {
  const noise = gaussian(n * H * W, 9, 0.05);
  const pixels: Float32Array[] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    const img = new Float32Array(H * W);
    for (let p = 0; p < H * W; p++) {
      const r = Math.floor(p / W);
      const col = p % W;
      const on = r >= 2 * c && r < 2 * c + 2 && col >= 2 * c && col < 2 * c + 2;
      img[p] = Math.min(1, Math.max(0, (on ? 0.9 : 0.1) + noise[i * H * W + p]));
    }
    pixels.push(img);
    labels.push(c);
  }
  return { pixels, labels };
}

/** A DatasetAccess over images held in memory (gray, displayed as replicated RGB). */
function memoryDataset(pixels: Float32Array[], labels: (number | undefined)[]): DatasetAccess {
  const refs: ImageRef[] = pixels.map((_, i) => ({
    id: `img-${i}`, path: `/memory/img-${i}.png`, source: `class/img-${i}.png`,
    ...(labels[i] !== undefined ? { label: labels[i] } : {}),
  }));
  return {
    refs,
    async *batches(batchSize = 8) {
      for (let start = 0; start < pixels.length; start += batchSize) {
        const part = pixels.slice(start, start + batchSize);
        const flat = new Float32Array(part.length * H * W);
        part.forEach((p, i) => flat.set(p, i * H * W));
        const display = part.map((p) => {
          const rgb = new Uint8Array(H * W * 3);
          p.forEach((v, k) => rgb.fill(Math.round(v * 255), k * 3, k * 3 + 3));
          return rgb;
        });
        yield { input: tf.tensor4d(flat, [part.length, H, W, 1]), refs: refs.slice(start, start + part.length), display, start };
      }
    },
  };
}

interface Point { id: string; x: number; y: number; label: number | null; prediction: number; confidence: number; thumb: string; source: string }
interface PointsFile { algorithm: string; implementation: string; layer: string; dims: number; stats: Record<string, number | string>; legend: { label: number; name: string; color: string }[]; points: Point[] }

async function readPoints(ctx: TestContext): Promise<PointsFile> {
  const a = ctx.out.artifacts.find((x) => x.id === 'embedding/points')!;
  return JSON.parse(await readFile(join(ctx.out.staging, a.path), 'utf8'));
}

describe('embedding', () => {
  let model: LayersAdapter;
  let sampleInput: tf.Tensor4D;
  const N = 24;
  const data = images(N);

  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    model = tinyModel();
    sampleInput = tf.zeros([1, H, W, 1]);
  });
  afterAll(() => {
    sampleInput.dispose();
    model.dispose();
  });

  const context = (labels: (number | undefined)[] = data.labels, logger = new MemoryLogger()) =>
    methodContext(model, sampleInput, { dataset: memoryDataset(data.pixels, labels), logger, classes: ['a', 'b', 'c'] });

  it('writes N points with finite coordinates, predictions, thumbnails and a scatter plot (t-SNE, exact)', async () => {
    const logger = new MemoryLogger();
    const ctx = await context(data.labels, logger);
    const artifacts = await runMethod(embedding, ctx, { iterations: 300 });
    expect(artifacts.map((a) => [a.id, a.kind])).toEqual([['embedding/points', 'data'], ['embedding/scatter', 'image']]);
    const file = await readPoints(ctx);
    expect(file.layer).toBe('gap');
    expect(file.dims).toBe(4);
    expect(file.implementation).toBe('tsne-js (exact)');
    expect(file.points).toHaveLength(N);
    // predictions and confidences are the model's
    const xt = tf.tensor4d(Float32Array.from(data.pixels.flatMap((p) => Array.from(p))), [N, H, W, 1]);
    const pt = model.probabilities(xt);
    const probs = (await pt.array()) as number[][];
    tf.dispose([xt, pt]);
    for (const [i, p] of file.points.entries()) {
      expect(p.id).toBe(`img-${i}`);
      expect(p.source).toBe(`class/img-${i}.png`);
      expect(Number.isFinite(p.x) && Number.isFinite(p.y)).toBe(true);
      expect(p.label).toBe(data.labels[i]);
      expect(p.prediction).toBe(probs[i].indexOf(Math.max(...probs[i])));
      expect(p.confidence).toBeCloseTo(Math.max(...probs[i]), 5);
      expect(p.thumb).toBe(`embedding/thumbs/img-${i}.png`);
      const thumb = join(ctx.out.staging, p.thumb);
      expect(existsSync(thumb)).toBe(true);
    }
    // 6x6 images stay 6x6, pixel for pixel
    const { data: px, info } = await sharp(join(ctx.out.staging, file.points[5].thumb)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([6, 6, 3]);
    expect(Array.from(px)).toEqual(Array.from(data.pixels[5], (v) => Math.round(v * 255)).flatMap((v) => [v, v, v]));
    expect(file.stats).toMatchObject({ algorithm: 'tsne', points: N, labelledPoints: N, layer: 'gap', dims: 4, pooled: false, qualityNeighbors: 10 });
    for (const key of ['labelAgreementEmbedding', 'labelAgreementFeatures', 'knnOverlap']) {
      expect(file.stats[key]).toBeGreaterThanOrEqual(0);
      expect(file.stats[key]).toBeLessThanOrEqual(1);
    }
    expect(file.legend.map((l) => l.name)).toEqual(['a', 'b', 'c']);
    // perplexity 30 needs 90 neighbours: lowered to (24 - 1) / 3, with a warning
    expect(file.stats.perplexity).toBeCloseTo(23 / 3, 10);
    expect(logger.text()).toMatch(/warn: embedding: t-SNE perplexity lowered from 30 to 7.667 for 24 points/);
    const scatter = artifacts[1];
    expect([scatter.width, scatter.height]).toEqual([800, 800]);
    const raw = await readRaw(ctx, scatter);
    expect(raw.shape).toEqual([N, 2]);
    file.points.forEach((p, i) => {
      expect(raw.data[2 * i]).toBeCloseTo(p.x, 3);
      expect(raw.data[2 * i + 1]).toBeCloseTo(p.y, 3);
    });
  });

  it('runs Barnes-Hut above exactMaxPoints, reproducibly for a seed, and ticks its progress', async () => {
    const run = async (seed: number) => {
      const logger = new MemoryLogger();
      const ctx = await context(data.labels, logger);
      await runMethod(embedding, ctx, { exactMaxPoints: 0, iterations: 300, init: 'random', seed, perplexity: 5 });
      return { file: await readPoints(ctx), logger };
    };
    const a = await run(3);
    expect(a.file.implementation).toBe('barnes-hut');
    expect(a.file.stats).toMatchObject({ perplexity: 5, theta: 0.5, learningRate: 50, iterations: 300, init: 'random' });
    expect(a.logger.text()).toContain('info: embedding: 300/300');
    expect(a.logger.records.filter((r) => r.level === 'warn')).toEqual([]);
    const b = await run(3);
    expect(b.file.points).toEqual(a.file.points);
    const c = await run(4);
    expect(c.file.points.map((p) => p.x)).not.toEqual(a.file.points.map((p) => p.x));
    // 8 images per class: at most 7 of 10 neighbours can share the label (chance: 7/23 = 0.30);
    // the GAP features come close to 0.7 and the embedding stays well above chance
    expect(a.file.stats.labelAgreementFeatures).toBeGreaterThan(0.65);
    expect(a.file.stats.labelAgreementEmbedding).toBeGreaterThan(0.5);
  });

  it('runs tsne-js reproducibly (its Math.random start is replaced by the PCA start)', async () => {
    const run = async () => {
      const ctx = await context();
      await runMethod(embedding, ctx, { iterations: 200 });
      return readPoints(ctx);
    };
    const a = await run();
    expect(a.implementation).toBe('tsne-js (exact)');
    expect((await run()).points).toEqual(a.points);
  });

  it('runs UMAP reproducibly for a seed', async () => {
    const run = async () => {
      const ctx = await context();
      await runMethod(embedding, ctx, { algorithm: 'umap', neighbors: 5, epochs: 100, seed: 7 });
      return readPoints(ctx);
    };
    const a = await run();
    expect(a.implementation).toBe('umap-js');
    expect(a.points.every((p) => Number.isFinite(p.x) && Number.isFinite(p.y))).toBe(true);
    expect((await run()).points).toEqual(a.points);
  });

  it('pools a spatial layer and, with PCA, places each image at its first two principal scores', async () => {
    const ctx = await context();
    ctx.settings.batchSize = 10; // batches of 10, 10, 4
    await runMethod(embedding, ctx, { algorithm: 'pca', layer: 'c1' });
    const file = await readPoints(ctx);
    expect(file.stats).toMatchObject({ layer: 'c1', dims: 4, pooled: true, implementation: 'pca' });
    const x = tf.tensor4d(Float32Array.from(data.pixels.flatMap((p) => Array.from(p))), [N, H, W, 1]);
    const { logits, activations } = model.forward(x, ['c1']);
    const pooled = tf.mean(activations.get('c1')!, [1, 2]);
    const feats = Float64Array.from(await pooled.data());
    tf.dispose([x, logits, pooled, ...activations.values()]);
    const p = pca(feats, N, 4, 2);
    file.points.forEach((pt, i) => {
      expect(pt.x).toBeCloseTo(p.projected[2 * i], 4);
      expect(pt.y).toBeCloseTo(p.projected[2 * i + 1], 4);
    });
  });

  it('skips unlabelled points in the label agreement and draws them gray', async () => {
    const labels = data.labels.map((l, i) => (i % 4 === 0 ? undefined : l));
    const ctx = await context(labels);
    await runMethod(embedding, ctx, { algorithm: 'pca' });
    const file = await readPoints(ctx);
    expect(file.stats.labelledPoints).toBe(18);
    expect(file.points[0].label).toBeNull();
    expect(file.points[1].label).toBe(1);
    const none = await context(data.labels.map(() => undefined));
    await runMethod(embedding, none, { algorithm: 'pca' });
    const unlabelled = await readPoints(none);
    expect(unlabelled.stats.labelledPoints).toBe(0);
    expect(unlabelled.stats).not.toHaveProperty('labelAgreementEmbedding');
    expect(unlabelled.legend).toEqual([]);
    expect(none.out.artifacts[1].alt).toContain('no labels, all points gray');
  });

  it('defaults to the classifier input: GAP output, past a softmax layer, before a 1x1-conv class head', () => {
    expect(featureLayer(model).name).toBe('gap');
    const input = tf.input({ shape: [8, 8, 3] });
    const feat = tf.layers.conv2d({ filters: 5, kernelSize: 3, name: 'feat' }).apply(input) as tf.SymbolicTensor;
    const head = tf.layers.conv2d({ filters: 4, kernelSize: 1, name: 'head' }).apply(feat) as tf.SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(head) as tf.SymbolicTensor;
    const nin = new LayersAdapter(tf.model({ inputs: input, outputs: gap }));
    expect(featureLayer(nin).name).toBe('feat');
    nin.dispose();
    const input2 = tf.input({ shape: [8, 8, 3] });
    const flat = tf.layers.flatten({ name: 'flat' }).apply(input2) as tf.SymbolicTensor;
    const fc = tf.layers.dense({ units: 6, name: 'fc' }).apply(flat) as tf.SymbolicTensor;
    const logits = tf.layers.dense({ units: 4, name: 'logits' }).apply(fc) as tf.SymbolicTensor;
    const soft = tf.layers.softmax({ name: 'soft' }).apply(logits) as tf.SymbolicTensor;
    const mlp = new LayersAdapter(tf.model({ inputs: input2, outputs: soft }));
    expect(featureLayer(mlp).name).toBe('fc');
    mlp.dispose();
  });

  it('reports an unknown layer', () => {
    expect(embedding.check!(embedding.options.parse({ layer: 'gapp' }), model)[0]).toMatchObject({ key: 'layer', message: expect.stringMatching(/^no layer "gapp"; nearest: gap/) });
    expect(embedding.check!(embedding.options.parse({}), model)).toEqual([]);
  });

  it('downscales large thumbnails to at most thumbSize and keeps colour', async () => {
    const rgb = new Uint8Array(100 * 80 * 3);
    for (let i = 0; i < 100 * 80; i++) rgb.set([200, 30, 60], i * 3);
    const png = await thumbnailPng(rgb, 100, 80, 64);
    const { data: px, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([64, 51, 3]);
    expect(Array.from(px.subarray(0, 3))).toEqual([200, 30, 60]);
  });


  it.skipIf(!haveFixtures)('embeds the photos by the pooled last spatial layer of the real Darknet Tiny', async () => {
    const { adapter: darknet } = await loadModel(resolve(FIXTURES, 'darknet-tiny'));
    const classes = readFileSync(resolve(FIXTURES, 'darknet-tiny/labels.txt'), 'utf8').split('\n');
    const files = readdirSync(resolve(FIXTURES, 'photos')).sort();
    const decoded = await Promise.all(files.map(async (name) => {
      const { data } = await sharp(resolve(FIXTURES, 'photos', name)).removeAlpha().resize(224, 224, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
      return new Uint8Array(data);
    }));
    const refs: ImageRef[] = files.map((name, i) => ({ id: `photo-${i}`, path: resolve(FIXTURES, 'photos', name), source: name }));
    const dataset: DatasetAccess = {
      refs,
      async *batches(batchSize = 4) {
        for (let start = 0; start < refs.length; start += batchSize) {
          const part = decoded.slice(start, start + batchSize);
          const flat = Float32Array.from(part.flatMap((d) => Array.from(d, (v) => v / 255)));
          yield { input: tf.tensor4d(flat, [part.length, 224, 224, 3]), refs: refs.slice(start, start + part.length), display: part, start };
        }
      },
    };
    const input = tf.zeros([1, 224, 224, 3]) as tf.Tensor4D;
    const ctx = await methodContext(darknet, input, { dataset, classes });
    ctx.settings.batchSize = 4;
    await runMethod(embedding, ctx, { algorithm: 'pca' });
    const file = await readPoints(ctx);
    expect(file.stats).toMatchObject({ layer: 'leaky_re_lu_15', dims: 128, pooled: true, points: files.length, labelledPoints: 0 });
    const chelsea = file.points[files.indexOf('chelsea.png')];
    expect(classes[chelsea.prediction]).toBe('Egyptian cat');
    expect(chelsea.confidence).toBeGreaterThan(0.5);
    const { info } = await sharp(join(ctx.out.staging, chelsea.thumb)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([64, 64]);
    input.dispose();
    darknet.dispose();
  });
});
