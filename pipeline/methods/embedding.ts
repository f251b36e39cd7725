import { forwardPass } from '../compute/dataset-pass.ts';
import sharp from 'sharp';
import { z } from 'zod';
import { exactKnn, knnLabelAgreement, knnOverlap } from '../embedding/knn.ts';
import { reduceTo2d, type ReduceOptions } from '../embedding/reduce.ts';
import { drawScatter, groupColor, groupColorName } from '../embedding/scatter.ts';
import type { EmbeddingFile, EmbeddingPoint } from '../data-files.ts';
import { ConvlensError } from '../errors.ts';
import type { LayerInfo, ModelAdapter } from '../model/adapter.ts';
import { encodeImage } from '../render.ts';
import { defineMethod, layerProblem, type MethodContext } from './types.ts';

/** Neighbours for the quality figures. */
const QUALITY_K = 10;

/**
 * Dataset embedding: every `data.dataset` image as a point in 2-D, placed by the features of one
 * layer (t-SNE: van der Maaten & Hinton 2008; Barnes-Hut: van der Maaten 2014; UMAP: McInnes et
 * al. 2018; or PCA).
 *
 * Features: f_i = the activation of `layer` for image i, [N, D]; a spatial activation
 * [h, w, D] is global-average-pooled to [D]. Default layer: the input of the classifier, i.e.
 * the input of the last layer after stepping back over a trailing softmax/activation (for a
 * GAP + dense head: the GAP output); where that is a 1x1 convolution to one map per class (a
 * NiN/Darknet head), the last spatial layer before it, pooled.
 * Reduction (pipeline/embedding/): PCA to `pcaDims` (50, as bhtsne's default) when D is larger;
 * then t-SNE, whose conventions follow scikit-learn >= 1.2 (PCA init scaled to std 1e-4, early
 * exaggeration 12 for 250 iterations, learning rate max(N / 12 / 4, 50), gradient with the
 * factor 4, squared Euclidean input distances, perplexity 30 over k = 3 * perplexity neighbours):
 * tsne-js (exact, O(N^2)) up to `exactMaxPoints`, where tsne-js's own schedule applies
 * (exaggeration for 100 iterations, non-squared input distances, early stop), the Barnes-Hut
 * implementation (theta 0.5, sklearn's cell criterion side / distance < theta) above; or UMAP
 * (umap-js, seeded, on the exact kNN graph); or the first two principal components.
 * Quality: for each point, the fraction of its 10 nearest neighbours (Euclidean) that share its
 * label, averaged, in the embedding and in the original (pooled, unreduced) feature space; and
 * the 10-NN overlap, mean |NN_feat(i) ∩ NN_emb(i)| / 10. Unlabelled points are skipped as
 * queries and unlabelled neighbours are left out of the fraction.
 * Output: one data artifact (per point x, y, label, prediction, confidence, thumbnail, source),
 * thumbnails under embedding/thumbs/, and a static scatter PNG coloured by label with the
 * coordinates [N, 2] as its raw data.
 */
export const embedding = defineMethod({
  id: 'embedding',
  title: 'Dataset embedding',
  paper: 'van der Maaten 2014, Accelerating t-SNE using Tree-Based Algorithms',
  needs: { dataset: true },
  options: z.strictObject({
    enabled: z.boolean().default(true),
    layer: z.string().optional().describe('Feature layer (default: the input of the classifier layer; spatial layers are global-average-pooled)'),
    algorithm: z.enum(['tsne', 'umap', 'pca']).default('tsne').describe('2-D reduction'),
    perplexity: z.number().positive().default(30).describe('t-SNE perplexity (lowered to (N - 1) / 3 for small sets)'),
    theta: z.number().min(0).max(1).default(0.5).describe('Barnes-Hut accuracy: 0 is exact, larger is faster and coarser'),
    iterations: z.number().int().min(1).default(1000).describe('t-SNE iterations (the first 250 with early exaggeration)'),
    learningRate: z.union([z.literal('auto'), z.number().positive()]).default('auto')
      .describe('t-SNE learning rate; "auto" is max(N / 12 / 4, 50) as scikit-learn (the same step as openTSNE\'s N / 12)'),
    init: z.enum(['pca', 'random']).default('pca').describe('t-SNE start: the first two principal axes, or seeded Gaussian noise'),
    exactMaxPoints: z.number().int().min(0).default(100)
      .describe('t-SNE runs tsne-js (exact, O(N^2): ~4 s for 100 points, ~30 s for 300) up to this many points, Barnes-Hut above (0: always Barnes-Hut; theta 0 makes it exact)'),
    pcaDims: z.number().int().min(0).default(50).describe('PCA to this many dimensions before t-SNE / UMAP when the features have more (0: never)'),
    neighbors: z.number().int().min(2).default(15).describe('UMAP neighbours'),
    minDist: z.number().min(0).default(0.1).describe('UMAP minimum distance'),
    epochs: z.number().int().min(0).default(0).describe('UMAP epochs (0: umap-js default for the dataset size)'),
    seed: z.number().int().default(0).describe('Added to compute.seed: the seed of the random parts (t-SNE random init, UMAP, scatter jitter)'),
    thumbSize: z.number().int().min(8).max(256).default(64).describe('Thumbnails are downscaled to at most this many pixels per side'),
  }),
  check(opts, model) {
    return layerProblem(model, 'layer', opts.layer);
  },
  async run(ctx, opts) {
    if (!ctx.dataset) throw new ConvlensError('embedding needs data.dataset', { hint: 'Add data.dataset to viz.yaml or disable methods.embedding.' });
    const layer = opts.layer ? ctx.model.layer(opts.layer) : featureLayer(ctx.model);
    const n = ctx.dataset.refs.length;
    if (n < 3) {
      ctx.logger.warn(`embedding: skipped: the dataset has ${n} image${n === 1 ? '' : 's'}; an embedding needs at least 3`);
      return;
    }
    const t0 = performance.now();
    const f = await datasetFeatures(ctx, layer.name, opts.thumbSize);
    const featureSeconds = (performance.now() - t0) / 1000;

    const seed = ctx.settings.seed + opts.seed;
    const reduceOpts: ReduceOptions = { ...opts, seed, algorithm: opts.algorithm };
    const t1 = performance.now();
    const r = reduceTo2d(f.features, n, f.dims, reduceOpts, (label, total) => ctx.logger.progress(label, total));
    const seconds = (performance.now() - t1) / 1000;
    for (const w of r.warnings) ctx.logger.warn(`embedding: ${w}`);

    // quality: 10-NN label agreement and overlap, feature space vs embedding
    const groups = labelGroups(f.labels, f.labelNames);
    const k = Math.min(QUALITY_K, n - 1);
    const featKnn = r.featureKnn && r.featureKnn.k >= k ? r.featureKnn : exactKnn(f.features, n, f.dims, k);
    const embKnn = exactKnn(r.y, n, 2, k);
    const labelled = groups.filter((g) => g !== null).length;
    const quality: Record<string, number> = { qualityNeighbors: k, knnOverlap: knnOverlap(featKnn, embKnn, k), labelledPoints: labelled };
    if (labelled > 0) {
      const emb = knnLabelAgreement(embKnn, groups, k);
      const feat = knnLabelAgreement(featKnn, groups, k);
      if (Number.isFinite(emb)) quality.labelAgreementEmbedding = emb;
      if (Number.isFinite(feat)) quality.labelAgreementFeatures = feat;
    }
    const name = { tsne: 't-SNE', umap: 'UMAP', pca: 'PCA' }[opts.algorithm];
    const stats = finite({
      algorithm: opts.algorithm, implementation: r.implementation, points: n, layer: layer.name, dims: f.dims, inputDims: r.inputDims,
      pooled: f.pooled, iterations: r.iterations, seconds: round(seconds, 3), featureSeconds: round(featureSeconds, 3),
      ...r.stats, ...quality,
    });

    const legend = legendOf(groups, f.labels, f.labelNames, ctx.classes);
    const points = ctx.dataset.refs.map((ref, i): EmbeddingPoint => ({
      id: ref.id,
      x: precise(r.y[2 * i]),
      y: precise(r.y[2 * i + 1]),
      label: f.labels[i],
      ...(f.labelNames[i] !== null ? { labelName: f.labelNames[i] } : {}),
      prediction: f.predictions[i],
      predictionName: ctx.classes[f.predictions[i]] ?? String(f.predictions[i]),
      confidence: precise(f.confidences[i]),
      thumb: f.thumbs[i],
      source: ref.source,
    }));
    const what = `${n} dataset images by the ${f.pooled ? 'global-average-pooled ' : ''}features of ${layer.name} (${f.dims}-d)`;
    await ctx.out.data('embedding', 'points', {
      id: 'embedding/points', method: 'embedding', layer: layer.name,
      title: `${name} of ${what}`,
      stats,
    }, { algorithm: opts.algorithm, implementation: r.implementation, layer: layer.name, dims: f.dims, stats, legend, points } satisfies EmbeddingFile, f.thumbs);

    const scatter = drawScatter(r.y, groups, { seed });
    const legendText = legend.length === 0 ? 'no labels, all points gray'
      : `colours: ${legend.slice(0, 20).map((l) => `${l.name} ${groupColorName(l.group)}`).join(', ')}${legend.length > 20 ? `, and ${legend.length - 20} more classes (colours repeat)` : ''}`;
    await ctx.out.image('embedding', 'scatter', {
      id: 'embedding/scatter', method: 'embedding', layer: layer.name,
      title: `${name} of ${what}, coloured by label`,
      alt: `Scatter plot: ${name} of ${what}; each dot is one image, nearby dots have similar features; ${legendText}`,
      stats,
    }, { ...scatter, channels: 3 }, { data: Float32Array.from(r.y), shape: [n, 2] });
  },
});

/**
 * The default feature layer: the input of the classifier layer (the last layer, stepping back
 * over parameter-free activation and identity layers: a softmax, a dropout); for a NiN/Darknet head (a 1x1 convolution to
 * one map per class), the last spatial layer before it.
 */
export function featureLayer(model: ModelAdapter): LayerInfo {
  let last = model.layers.at(-1);
  if (!last) throw new ConvlensError('the model has no layers', { hint: 'Check that model.path names the classifier, or set methods.embedding.enabled: false.' });
  while (last.params === 0 && (last.role === 'activation' || last.role === 'identity') && last.inputs.length === 1) last = model.layer(last.inputs[0]);
  if (last.inputs.length !== 1) return last;
  const input = model.layers.find((l) => l.name === last!.inputs[0]);
  if (!input) return last;
  const headConv = input.outputShape.length === 4 && input.outputShape.at(-1) === model.numClasses;
  return headConv ? model.lastSpatialLayer() : input;
}

interface Features {
  /** [n, dims], float64. */
  features: Float64Array;
  dims: number;
  pooled: boolean;
  labels: (number | null)[];
  labelNames: (string | null)[];
  predictions: Int32Array;
  confidences: Float64Array;
  /** Thumbnail path per image, relative to the release. */
  thumbs: string[];
}

/** One pass over the dataset: pooled features, top-1 prediction and confidence, thumbnails. */
async function datasetFeatures(ctx: MethodContext, layer: string, thumbSize: number): Promise<Features> {
  const refs = ctx.dataset!.refs;
  const n = refs.length;
  let features = new Float64Array(0);
  let dims = 0;
  let pooled = false;
  const predictions = new Int32Array(n);
  const confidences = new Float64Array(n);
  const thumbs: string[] = new Array(n);
  const bar = ctx.logger.progress('embedding features', n);
  const [h, w] = ctx.preprocessing.size;
  for await (const b of forwardPass(ctx, [layer], ctx.settings.batchSize)) {
    const act = b.activations[0];
    pooled = act.shape.length === 4;
    const fData = pooled ? spatialMean(act.data, act.shape) : act.data;
    const pData = b.probs;
    const m = b.refs.length;
    const d = fData.length / m;
    if (dims === 0) {
      dims = d;
      features = new Float64Array(n * d);
    }
    features.set(fData, b.start * dims);
    const classes = pData.length / m;
    for (let i = 0; i < m; i++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (pData[i * classes + c] > pData[i * classes + best]) best = c;
      predictions[b.start + i] = best;
      confidences[b.start + i] = pData[i * classes + best];
    }
    const written = await Promise.all(b.refs.map(async (ref, i) => {
      const path = `embedding/thumbs/${ref.id}.png`;
      await ctx.out.file(path, await thumbnailPng(b.display[i], w, h, thumbSize));
      return path;
    }));
    written.forEach((p, i) => { thumbs[b.start + i] = p; });
    bar.tick(m);
  }
  bar.done();
  return {
    features, dims, pooled,
    labels: refs.map((r) => r.label ?? null),
    labelNames: refs.map((r) => r.labelName ?? null),
    predictions, confidences, thumbs,
  };
}

/** The mean over height and width of activations [n, h, w, c], as [n, c] (float64 sums). */
function spatialMean(data: Float32Array, shape: readonly number[]): Float32Array {
  const [n, h, w, c] = shape;
  const out = new Float32Array(n * c);
  const sums = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    sums.fill(0);
    for (let p = 0; p < h * w; p++) {
      const at = (i * h * w + p) * c;
      for (let k = 0; k < c; k++) sums[k] += data[at + k];
    }
    for (let k = 0; k < c; k++) out[i * c + k] = sums[k] / (h * w);
  }
  return out;
}

/** PNG of an RGB display image, downscaled (bicubic, aspect kept) to at most `maxSide` pixels per side. */
export async function thumbnailPng(rgb: Uint8Array, width: number, height: number, maxSide: number): Promise<Uint8Array> {
  let pixels = rgb;
  let w = width;
  let h = height;
  if (Math.max(width, height) > maxSide) {
    const { data, info } = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } })
      .resize({ width: maxSide, height: maxSide, fit: 'inside', kernel: 'cubic' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    w = info.width;
    h = info.height;
  }
  return encodeImage(pixels, w, h, 3, 'png');
}

/**
 * Colour groups: the class index where known; images labelled only by name (no labels file)
 * get groups numbered after the class indices, by name; unlabelled images null.
 */
function labelGroups(labels: readonly (number | null)[], names: readonly (string | null)[]): (number | null)[] {
  const maxLabel = labels.reduce<number>((m, l) => (l !== null && l > m ? l : m), -1);
  const byName = new Map<string, number>();
  [...new Set(names.filter((nm, i) => nm !== null && labels[i] === null) as string[])].sort().forEach((nm, i) => byName.set(nm, maxLabel + 1 + i));
  return labels.map((l, i) => (l !== null ? l : names[i] !== null ? byName.get(names[i]!)! : null));
}

function legendOf(groups: readonly (number | null)[], labels: readonly (number | null)[], names: readonly (string | null)[], classes: readonly string[]) {
  const seen = new Map<number, { group: number; label: number | null; name: string; color: string; count: number }>();
  groups.forEach((g, i) => {
    if (g === null) return;
    const entry = seen.get(g);
    if (entry) { entry.count++; return; }
    const label = labels[i];
    const name = label !== null ? (classes[label] ?? names[i] ?? String(label)) : names[i]!;
    seen.set(g, { group: g, label, name, color: groupColor(g), count: 1 });
  });
  return [...seen.values()].sort((a, b) => a.group - b.group);
}

/** Stats without non-finite numbers (the manifest holds numbers only). */
function finite(stats: Record<string, number | string | boolean>): Record<string, number | string | boolean> {
  return Object.fromEntries(Object.entries(stats).filter(([, v]) => typeof v !== 'number' || Number.isFinite(v)));
}

/** Seven significant digits (float32 precision) keep the JSON small. */
function precise(v: number): number {
  return Number(v.toPrecision(7));
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
