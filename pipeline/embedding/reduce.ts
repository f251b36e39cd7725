import TSNE from 'tsne-js';
import { UMAP } from 'umap-js';
import { exactKnn, type Knn } from './knn.ts';
import { pca } from './pca.ts';
import { gaussian, mulberry32 } from '../random.ts';
import { autoLearningRate, bhTsne, jointProbabilities } from './tsne-barnes-hut.ts';

/**
 * Feature vectors [n, d] to 2-D: t-SNE (tsne-js exact up to `exactMaxPoints`, Barnes-Hut
 * above), UMAP (umap-js on an exact kNN graph) or PCA. Shared by the embedding method and its
 * benchmark.
 */

export type Algorithm = 'tsne' | 'umap' | 'pca';

export interface ReduceOptions {
  algorithm: Algorithm;
  /** t-SNE perplexity; lowered to (n - 1) / 3 when there are too few points (as openTSNE does). */
  perplexity: number;
  theta: number;
  /** t-SNE iterations. */
  iterations: number;
  learningRate: number | 'auto';
  /** t-SNE start: PCA scaled to std 1e-4 on the first axis (scikit-learn's default) or N(0, 1e-4^2). */
  init: 'pca' | 'random';
  seed: number;
  /** PCA to this many dimensions before t-SNE / UMAP when the features have more (0: never). */
  pcaDims: number;
  /** Up to this many points t-SNE runs tsne-js (exact); above, the Barnes-Hut implementation. */
  exactMaxPoints: number;
  /** UMAP neighbours (lowered to n - 1 for tiny sets). */
  neighbors: number;
  minDist: number;
  /** UMAP epochs; 0: umap-js's default for the size (500 up to 2,500 points ... 200 above 7,500). */
  epochs: number;
}

export interface ReduceResult {
  /** Embedding [n, 2]. */
  y: Float64Array;
  /** What ran: "barnes-hut", "tsne-js (exact)", "umap-js", "pca". */
  implementation: string;
  /** Optimisation steps run (t-SNE iterations, UMAP epochs; 0 for PCA). */
  iterations: number;
  /** Dimensions the reduction saw (after the PCA pre-reduction). */
  inputDims: number;
  stats: Record<string, number | string>;
  /** The kNN graph of the input when it was computed on the unreduced features (k >= 10 then). */
  featureKnn?: Knn;
  warnings: string[];
}

export type ProgressFactory = (label: string, total: number) => { tick(n?: number): void; done(summary?: string): void };

const noProgress: ProgressFactory = () => ({ tick() {}, done() {} });

export function reduceTo2d(x: Float64Array, n: number, d: number, opts: ReduceOptions, progress: ProgressFactory = noProgress): ReduceResult {
  const warnings: string[] = [];
  if (opts.algorithm === 'pca') {
    const bar = progress('embedding', 1);
    const p = pca(x, n, d, 2);
    bar.tick();
    bar.done();
    return { y: padTo2(p.projected, n, p.k), implementation: 'pca', iterations: 0, inputDims: d, stats: { explainedVariance1: p.variances[0] ?? 0, explainedVariance2: p.variances[1] ?? 0 }, warnings };
  }
  // PCA pre-reduction (and the t-SNE start from its first two axes)
  const reduce = opts.pcaDims > 0 && d > opts.pcaDims;
  const p = pca(x, n, d, reduce ? opts.pcaDims : Math.min(2, d));
  const input = reduce ? p.projected : x;
  const dims = reduce ? p.k : d;

  if (opts.algorithm === 'umap') {
    let nn = Math.min(opts.neighbors, n - 1);
    if (nn < opts.neighbors) warnings.push(`UMAP neighbours lowered from ${opts.neighbors} to ${nn} for ${n} points`);
    nn = Math.max(nn, 2);
    const knn = exactKnn(input, n, dims, nn - 1);
    const rows = (i: number) => Array.from(input.subarray(i * dims, (i + 1) * dims));
    const X = Array.from({ length: n }, (_, i) => rows(i));
    const umap = new UMAP({ nComponents: 2, nNeighbors: nn, minDist: opts.minDist, nEpochs: opts.epochs > 0 ? opts.epochs : undefined, random: mulberry32(opts.seed) });
    // umap-learn's kNN lists each point first, at distance 0
    umap.setPrecomputedKNN(
      Array.from({ length: n }, (_, i) => [i, ...knn.indices.subarray(i * knn.k, (i + 1) * knn.k)]),
      Array.from({ length: n }, (_, i) => [0, ...Array.from(knn.dist2.subarray(i * knn.k, (i + 1) * knn.k), Math.sqrt)]),
    );
    const epochs = umap.initializeFit(X);
    const bar = progress('embedding', epochs);
    for (let e = 0; e < epochs; e++) { umap.step(); bar.tick(); }
    bar.done();
    const emb = umap.getEmbedding();
    const y = new Float64Array(2 * n);
    emb.forEach((row, i) => { y[2 * i] = row[0]; y[2 * i + 1] = row[1]; });
    return { y, implementation: 'umap-js', iterations: epochs, inputDims: dims, stats: { neighbors: nn, minDist: opts.minDist }, featureKnn: reduce ? undefined : knn, warnings };
  }

  // t-SNE
  let perplexity = opts.perplexity;
  if (3 * perplexity > n - 1) {
    perplexity = Math.max((n - 1) / 3, 1);
    warnings.push(`t-SNE perplexity lowered from ${opts.perplexity} to ${round(perplexity, 3)} for ${n} points (k = 3 * perplexity neighbours must exist)`);
  }
  const init = tsneInit(p.projected, n, p.k, opts.init, opts.seed);
  const lr = opts.learningRate === 'auto' ? autoLearningRate(n) : opts.learningRate;
  const bar = progress('embedding', opts.iterations);
  if (n <= opts.exactMaxPoints) {
    const model = new TSNE({ dim: 2, perplexity, earlyExaggeration: 12, learningRate: lr, nIter: opts.iterations, metric: 'euclidean' });
    model.init({ data: Array.from({ length: n }, (_, i) => Array.from(input.subarray(i * dims, (i + 1) * dims))), type: 'dense' });
    model.outputEmbedding.data.set(init);
    model.on('progressIter', () => bar.tick());
    const [kl, last] = model.run();
    bar.done();
    const y = Float64Array.from(model.getOutput().flat());
    return { y, implementation: 'tsne-js (exact)', iterations: last, inputDims: dims, stats: { perplexity, learningRate: lr, klDivergence: kl, init: opts.init }, warnings };
  }
  const k = Math.min(n - 1, Math.ceil(3 * perplexity));
  const knn = exactKnn(input, n, dims, k);
  const P = jointProbabilities(knn, perplexity);
  const r = bhTsne(P, init, { theta: opts.theta, iterations: opts.iterations, learningRate: lr, onIteration: () => bar.tick() });
  bar.done();
  return {
    y: r.y, implementation: 'barnes-hut', iterations: r.iterations, inputDims: dims,
    stats: { perplexity, theta: opts.theta, learningRate: r.learningRate, klDivergence: r.kl, init: opts.init },
    featureKnn: reduce ? undefined : knn, warnings,
  };
}

/**
 * scikit-learn's t-SNE start: PCA scores on the first two axes divided by the std of the first
 * and times 1e-4 (init="pca"), or 1e-4 * N(0, 1) (init="random", seeded). Constant features fall
 * back to the random start.
 */
export function tsneInit(projected: Float64Array, n: number, k: number, kind: 'pca' | 'random', seed: number): Float64Array {
  if (kind === 'pca' && k >= 1) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += projected[i * k];
    mean /= n;
    let sd = 0;
    for (let i = 0; i < n; i++) sd += (projected[i * k] - mean) ** 2;
    sd = Math.sqrt(sd / n);
    if (sd > 0) {
      const y = new Float64Array(2 * n);
      for (let i = 0; i < n; i++) {
        y[2 * i] = (projected[i * k] / sd) * 1e-4;
        y[2 * i + 1] = k > 1 ? (projected[i * k + 1] / sd) * 1e-4 : 0;
      }
      return y;
    }
  }
  return gaussian(2 * n, seed, 1e-4);
}

function padTo2(projected: Float64Array, n: number, k: number): Float64Array {
  if (k === 2) return projected;
  const y = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < Math.min(k, 2); c++) y[2 * i + c] = projected[i * k + c];
  return y;
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
