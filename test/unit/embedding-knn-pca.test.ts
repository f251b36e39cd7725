import { describe, expect, it } from 'vitest';
import { exactKnn, knnLabelAgreement, knnOverlap } from '../../pipeline/embedding/knn.ts';
import { pca, symmetricEigen } from '../../pipeline/embedding/pca.ts';
import { gaussian } from '../../pipeline/random.ts';
import { drawScatter, PALETTE } from '../../pipeline/embedding/scatter.ts';

// p0 (0,0) p1 (1,0) p2 (0,2) p3 (3,3) p4 (3,4) p5 (10,10)
const POINTS = Float64Array.from([0, 0, 1, 0, 0, 2, 3, 3, 3, 4, 10, 10]);

describe('exact kNN', () => {
  it('matches sorting all distances (ties by index), on sizes that hit every block remainder', () => {
    for (const [n, d, k] of [[37, 5, 7], [6, 3, 5], [9, 1, 8], [2, 4, 3]]) {
      // values on a coarse grid make equal distances (ties) common
      const x = gaussian(n * d, n).map((v) => Math.round(v * 2));
      const knn = exactKnn(x, n, d, k);
      const kk = Math.min(k, n - 1);
      expect(knn.k).toBe(kk);
      for (let i = 0; i < n; i++) {
        const all = Array.from({ length: n }, (_, j) => j).filter((j) => j !== i).map((j) => {
          let s = 0;
          for (let t = 0; t < d; t++) s += (x[i * d + t] - x[j * d + t]) ** 2;
          return { j, s };
        }).sort((a, b) => a.s - b.s || a.j - b.j).slice(0, kk);
        expect(Array.from(knn.indices.subarray(i * kk, (i + 1) * kk))).toEqual(all.map((a) => a.j));
        expect(Array.from(knn.dist2.subarray(i * kk, (i + 1) * kk))).toEqual(all.map((a) => a.s));
      }
    }
  });

  it('label agreement on a hand-made 2-D set equals the hand-computed value', () => {
    const knn = exactKnn(POINTS, 6, 2, 2);
    // 2-NN: p0 {p1, p2}, p1 {p0, p2}, p2 {p0, p1}, p3 {p4, p2}, p4 {p3, p2}; p5 is unlabelled
    // own-label fractions 1/2, 1/2, 0, 1/2, 0 -> mean 0.3
    expect(knnLabelAgreement(knn, [0, 0, 1, 1, 0, null])).toBeCloseTo(0.3, 12);
    // p2 unlabelled: it is dropped from the neighbours -> p0 1, p1 1, p3 0, p4 0 -> 0.5
    expect(knnLabelAgreement(knn, [0, 0, null, 1, 0, null])).toBeCloseTo(0.5, 12);
    expect(knnLabelAgreement(knn, [null, null, null, null, null, null])).toBeNaN();
    // k = 1: p0 p1(0) yes, p1 p0 yes, p2 p0(0) no, p3 p4(0) no, p4 p3(1) no -> 2/5
    expect(knnLabelAgreement(knn, [0, 0, 1, 1, 0, null], 1)).toBeCloseTo(0.4, 12);
  });

  it('overlap counts the neighbours two spaces share', () => {
    const a = exactKnn(POINTS, 6, 2, 2);
    expect(knnOverlap(a, a)).toBe(1);
    // the same points on a line x = 0, 1, 2, 3, 4, 5: 2-NN {1,2} {0,2} {1,3} {2,4} {3,5} {4,3}
    // shared with the 2-D sets {1,2} {0,2} {0,1} {4,2} {3,2} {4,3}: 2, 2, 1, 2, 1, 2 of 2 -> 10/12
    const line = exactKnn(Float64Array.from([0, 1, 2, 3, 4, 5]), 6, 1, 2);
    expect(knnOverlap(a, line)).toBeCloseTo(10 / 12, 12);
  });
});

describe('PCA', () => {
  it('recovers a known principal axis, with the sign convention (largest entry positive)', () => {
    const n = 400;
    const d = 6;
    const axis = [0.1, -0.7, 0.1, 0.5, -0.3, 0.2];
    const norm = Math.hypot(...axis);
    const u = axis.map((v) => v / norm);
    const t = gaussian(n, 1, 3);
    const noise = gaussian(n * d, 2, 0.05);
    const x = new Float64Array(n * d);
    for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) x[i * d + c] = 5 + t[i] * u[c] + noise[i * d + c];
    const p = pca(x, n, d, 2);
    const c0 = Array.from(p.components.subarray(0, d));
    // the largest-magnitude entry of u is negative (-0.7): the component is -u
    c0.forEach((v, c) => expect(v).toBeCloseTo(-u[c], 2));
    expect(Math.abs(c0.reduce((s, v, c) => s + v * u[c], 0))).toBeGreaterThan(0.999);
    const tMean = t.reduce((a, v) => a + v, 0) / n;
    const tVar = t.reduce((a, v) => a + (v - tMean) ** 2, 0) / (n - 1);
    expect(p.variances[0] / tVar).toBeCloseTo(1, 2);
    expect(p.variances[1]).toBeLessThan(0.01);
    expect(p.mean[0]).toBeCloseTo(5, 1);
    // scores are the centred data on the axis: their variance is the eigenvalue
    const scores = Array.from({ length: n }, (_, i) => p.projected[i * 2]);
    const variance = scores.reduce((s, v) => s + v * v, 0) / (n - 1);
    expect(variance).toBeCloseTo(p.variances[0], 8);
  });

  it('uses the Gram matrix when there are fewer points than dimensions, with the same result', () => {
    const n = 8;
    const d = 20;
    const x = gaussian(n * d, 7);
    const gramWay = pca(x, n, d, 3);
    // same data padded with its mirror image about the mean: same covariance shape, n > d path
    const many = new Float64Array(2 * n * d * 2);
    const mean = gramWay.mean;
    for (let r = 0; r < 2; r++) {
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < d; c++) {
          const v = x[i * d + c] - mean[c];
          many[((r * 2) * n + i) * d + c] = mean[c] + v;
          many[((r * 2 + 1) * n + i) * d + c] = mean[c] - v;
        }
      }
    }
    const covWay = pca(many, 4 * n, d, 3);
    for (let k = 0; k < 3; k++) {
      for (let c = 0; c < d; c++) expect(gramWay.components[k * d + c]).toBeCloseTo(covWay.components[k * d + c], 8);
    }
  });

  it('decomposes a symmetric matrix: A v = lambda v, orthonormal, decreasing', () => {
    const m = 30;
    const a = new Float64Array(m * m);
    for (let i = 0; i < m; i++) for (let j = 0; j <= i; j++) a[i * m + j] = a[j * m + i] = Math.sin(3 * i + 7 * j) + (i === j ? 2 : 0);
    const { values, vectors } = symmetricEigen(a, m);
    for (let k = 0; k < m; k++) {
      if (k > 0) expect(values[k]).toBeLessThanOrEqual(values[k - 1]);
      for (let i = 0; i < m; i++) {
        let s = 0;
        for (let j = 0; j < m; j++) s += a[i * m + j] * vectors[k * m + j];
        expect(s).toBeCloseTo(values[k] * vectors[k * m + i], 10);
      }
      for (let l = 0; l < m; l++) {
        let s = 0;
        for (let j = 0; j < m; j++) s += vectors[k * m + j] * vectors[l * m + j];
        expect(s).toBeCloseTo(k === l ? 1 : 0, 10);
      }
    }
  });
});

describe('scatter', () => {
  it('draws each group in its palette colour on white', () => {
    const y = Float64Array.from([0, 0, 1, 1]);
    const { pixels, width } = drawScatter(y, [0, 1], { size: 100, margin: 10, radius: 4, alpha: 1 });
    const px = (x: number, yy: number) => Array.from(pixels.subarray((yy * width + x) * 3, (yy * width + x) * 3 + 3));
    const hex = (c: string) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
    // point 0 (min x, min y) is bottom-left, point 1 top-right: centres at 10 + 4 and 100 - 14
    expect(px(14, 85)).toEqual(hex(PALETTE[0]));
    expect(px(85, 14)).toEqual(hex(PALETTE[1]));
    expect(px(50, 50)).toEqual([255, 255, 255]);
  });
});
