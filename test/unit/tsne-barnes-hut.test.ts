import { describe, expect, it } from 'vitest';
import { exactKnn, knnLabelAgreement } from '../../pipeline/embedding/knn.ts';
import { gaussian } from '../../pipeline/random.ts';
import { bhGradient, bhTsne, calibratePerplexity, jointProbabilities, symmetrize, type SparseP } from '../../pipeline/embedding/tsne-barnes-hut.ts';

/** The exact t-SNE gradient from its textbook form, dense: 4 sum_j (p_ij - q_ij) w_ij (y_i - y_j). */
function exactGradient(y: Float64Array, P: SparseP, exaggeration: number): Float64Array {
  const n = P.n;
  const dense = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let e = P.rowPtr[i]; e < P.rowPtr[i + 1]; e++) dense[i * n + P.cols[e]] = exaggeration * P.vals[e];
  const w = new Float64Array(n * n);
  let Z = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const dx = y[2 * i] - y[2 * j];
      const dy = y[2 * i + 1] - y[2 * j + 1];
      w[i * n + j] = 1 / (1 + dx * dx + dy * dy);
      Z += w[i * n + j];
    }
  }
  const g = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const m = 4 * (dense[i * n + j] - w[i * n + j] / Z) * w[i * n + j];
      g[2 * i] += m * (y[2 * i] - y[2 * j]);
      g[2 * i + 1] += m * (y[2 * i + 1] - y[2 * j + 1]);
    }
  }
  return g;
}

function maxRelError(a: Float64Array, b: Float64Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

/** Three Gaussian clusters in `dims`-d, `per` points each, centres 10 apart on the axes. */
function clusters(per: number, dims: number, seed: number) {
  const noise = gaussian(3 * per * dims, seed);
  const x = new Float64Array(3 * per * dims);
  const labels: number[] = [];
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < per; p++) {
      const i = c * per + p;
      for (let t = 0; t < dims; t++) x[i * dims + t] = noise[i * dims + t] + (t === c ? 10 : 0);
      labels.push(c);
    }
  }
  return { x, labels, n: 3 * per };
}

describe('Barnes-Hut t-SNE', () => {
  const n = 50;
  const data = gaussian(n * 8, 11);
  const P = jointProbabilities(exactKnn(data, n, 8, 15), 5);
  const y = gaussian(2 * n, 12, 3);
  // two coincident points exercise the tree's leaf lists
  y[2 * 7] = y[2 * 3];
  y[2 * 7 + 1] = y[2 * 3 + 1];

  it('with theta = 0 gives the exact gradient (relative 1e-6)', () => {
    for (const exaggeration of [1, 12]) {
      const g = new Float64Array(2 * n);
      bhGradient(y, P, 0, exaggeration, g);
      expect(maxRelError(g, exactGradient(y, P, exaggeration))).toBeLessThan(1e-6);
    }
  });

  it('with theta = 0.5 approximates it', () => {
    const g = new Float64Array(2 * n);
    bhGradient(y, P, 0.5, 1, g);
    const err = maxRelError(g, exactGradient(y, P, 1));
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(0.05);
  });

  it('calibrates every point to the target perplexity (entropy within 1e-4)', () => {
    const m = 200;
    const x = gaussian(m * 10, 5, 4);
    const knn = exactKnn(x, m, 10, 45);
    for (const perplexity of [5, 15]) {
      const { p } = calibratePerplexity(knn, perplexity);
      for (let i = 0; i < m; i++) {
        let h = 0;
        let sum = 0;
        for (let t = 0; t < knn.k; t++) {
          const v = p[i * knn.k + t];
          sum += v;
          if (v > 0) h -= v * Math.log(v);
        }
        expect(sum).toBeCloseTo(1, 12);
        expect(Math.abs(h - Math.log(perplexity))).toBeLessThan(1e-4);
      }
    }
  });

  it('symmetrises P: p_ij = (p_j|i + p_i|j) / 2N, summing to 1', () => {
    // 3 points, k = 1: 0 -> 1, 1 -> 0, 2 -> 1, each with p = 1
    const knn = { n: 3, k: 1, indices: Int32Array.from([1, 0, 1]), dist2: Float64Array.from([1, 1, 4]) };
    const P = symmetrize(knn, Float64Array.from([1, 1, 1]));
    const dense = (i: number, j: number) => {
      for (let e = P.rowPtr[i]; e < P.rowPtr[i + 1]; e++) if (P.cols[e] === j) return P.vals[e];
      return 0;
    };
    expect([dense(0, 1), dense(1, 0), dense(1, 2), dense(2, 1), dense(0, 2)]).toEqual([2 / 6, 2 / 6, 1 / 6, 1 / 6, 0]);
  });

  it('separates three Gaussian clusters in 20-d (10-NN label agreement > 0.95)', () => {
    const { x, labels, n: m } = clusters(100, 20, 21);
    const P = jointProbabilities(exactKnn(x, m, 20, 90), 30);
    const r = bhTsne(P, gaussian(2 * m, 22, 1e-4), { iterations: 500 });
    expect(r.y.every(Number.isFinite)).toBe(true);
    expect(r.learningRate).toBe(50);
    expect(knnLabelAgreement(exactKnn(r.y, m, 2, 10), labels)).toBeGreaterThan(0.95);
  });

  it('is reproducible: the same start gives the same embedding, another start another one', () => {
    const run = (seed: number) => bhTsne(P, gaussian(2 * n, seed, 1e-4), { iterations: 300 }).y;
    const a = run(1);
    expect(Array.from(run(1))).toEqual(Array.from(a));
    expect(Array.from(run(2))).not.toEqual(Array.from(a));
  });
});
