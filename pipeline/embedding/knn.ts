/**
 * Exact k-nearest neighbours (Euclidean) by brute force, and the neighbourhood-preservation
 * figures the embedding method reports. Points are rows of a row-major Float64Array [n, d].
 * Each pair's distance is computed once (upper triangle, four rows against two columns per pass
 * over the dimensions) and offered to both rows' bounded max-heaps: n^2 d / 2 multiply-adds, about
 * 10k x 512-d in tens of seconds in plain JS. Ties are broken by the lower index.
 */

export interface Knn {
  n: number;
  k: number;
  /** Neighbour indices [n, k], nearest first; a point is never its own neighbour. */
  indices: Int32Array;
  /** Squared Euclidean distances [n, k], matching `indices`. */
  dist2: Float64Array;
}

/** (d, j) is worse (farther) than (e, l): larger distance, or equal distance and larger index. */
const worse = (d: number, j: number, e: number, l: number) => d > e || (d === e && j > l);

/** Bounded max-heap per row, stored in the row's slice of `hd`/`hi`; `size` counts entries. */
function offer(hd: Float64Array, hi: Int32Array, size: Int32Array, row: number, k: number, d: number, j: number): void {
  const base = row * k;
  const s = size[row];
  if (s < k) {
    // sift up
    let c = s;
    while (c > 0) {
      const p = (c - 1) >> 1;
      if (!worse(d, j, hd[base + p], hi[base + p])) break;
      hd[base + c] = hd[base + p];
      hi[base + c] = hi[base + p];
      c = p;
    }
    hd[base + c] = d;
    hi[base + c] = j;
    size[row] = s + 1;
    return;
  }
  if (!worse(hd[base], hi[base], d, j)) return;
  // replace the root and sift down
  let c = 0;
  for (;;) {
    const l = 2 * c + 1;
    if (l >= k) break;
    const r = l + 1;
    let m = l;
    if (r < k && worse(hd[base + r], hi[base + r], hd[base + l], hi[base + l])) m = r;
    if (!worse(hd[base + m], hi[base + m], d, j)) break;
    hd[base + c] = hd[base + m];
    hi[base + c] = hi[base + m];
    c = m;
  }
  hd[base + c] = d;
  hi[base + c] = j;
}

/**
 * The k nearest neighbours of every row of `x` [n, d] (k is capped at n - 1). `onRows` is
 * called with the number of rows finished, for progress.
 */
export function exactKnn(x: Float64Array, n: number, d: number, k: number, onRows?: (done: number) => void): Knn {
  if (x.length !== n * d) throw new Error(`knn: ${x.length} values for [${n}, ${d}]`);
  k = Math.max(0, Math.min(k, n - 1));
  const hd = new Float64Array(n * k);
  const hi = new Int32Array(n * k);
  const size = new Int32Array(n);
  const pair = (i: number, j: number, s: number) => {
    offer(hd, hi, size, i, k, s, j);
    offer(hd, hi, size, j, k, s, i);
  };
  if (k > 0) {
    for (let i0 = 0; i0 < n; i0 += 4) {
      const rows = Math.min(4, n - i0);
      const a0 = i0 * d;
      const a1 = (i0 + Math.min(1, rows - 1)) * d;
      const a2 = (i0 + Math.min(2, rows - 1)) * d;
      const a3 = (i0 + Math.min(3, rows - 1)) * d;
      // pairs inside the block of four
      for (let p = 0; p < rows; p++) {
        for (let q = p + 1; q < rows; q++) {
          const ip = (i0 + p) * d;
          const iq = (i0 + q) * d;
          let s = 0;
          for (let t = 0; t < d; t++) { const v = x[ip + t] - x[iq + t]; s += v * v; }
          pair(i0 + p, i0 + q, s);
        }
      }
      for (let j = i0 + 4; j < n; j += 2) {
        const two = j + 1 < n;
        const b = j * d;
        const c = two ? b + d : b;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0, r0 = 0, r1 = 0, r2 = 0, r3 = 0;
        for (let t = 0; t < d; t++) {
          const xb = x[b + t];
          const xc = x[c + t];
          const y0 = x[a0 + t], y1 = x[a1 + t], y2 = x[a2 + t], y3 = x[a3 + t];
          let v = y0 - xb; s0 += v * v;
          v = y1 - xb; s1 += v * v;
          v = y2 - xb; s2 += v * v;
          v = y3 - xb; s3 += v * v;
          v = y0 - xc; r0 += v * v;
          v = y1 - xc; r1 += v * v;
          v = y2 - xc; r2 += v * v;
          v = y3 - xc; r3 += v * v;
        }
        pair(i0, j, s0);
        if (rows > 1) pair(i0 + 1, j, s1);
        if (rows > 2) pair(i0 + 2, j, s2);
        if (rows > 3) pair(i0 + 3, j, s3);
        if (two) {
          pair(i0, j + 1, r0);
          if (rows > 1) pair(i0 + 1, j + 1, r1);
          if (rows > 2) pair(i0 + 2, j + 1, r2);
          if (rows > 3) pair(i0 + 3, j + 1, r3);
        }
      }
      onRows?.(i0 + rows);
    }
  }
  // heap order -> nearest first
  const indices = new Int32Array(n * k);
  const dist2 = new Float64Array(n * k);
  const order = Array.from({ length: k }, (_, t) => t);
  for (let i = 0; i < n; i++) {
    const base = i * k;
    order.sort((u, v) => hd[base + u] - hd[base + v] || hi[base + u] - hi[base + v]);
    for (let t = 0; t < k; t++) {
      indices[base + t] = hi[base + order[t]];
      dist2[base + t] = hd[base + order[t]];
    }
    for (let t = 0; t < k; t++) order[t] = t;
  }
  return { n, k, indices, dist2 };
}

/**
 * Mean over labelled points of the fraction of their first `k` neighbours that share their label.
 * `labels[i]` is null for an unlabelled point: it is skipped as a query, and dropped from the
 * neighbours it appears among (the fraction is over labelled neighbours); a point whose
 * neighbours are all unlabelled is skipped. NaN when no point counts.
 */
export function knnLabelAgreement(knn: Knn, labels: readonly (number | null)[], k = knn.k): number {
  if (k > knn.k) throw new Error(`knn: asked for ${k} neighbours, have ${knn.k}`);
  let sum = 0;
  let counted = 0;
  for (let i = 0; i < knn.n; i++) {
    const li = labels[i];
    if (li === null || li === undefined) continue;
    let same = 0;
    let known = 0;
    for (let t = 0; t < k; t++) {
      const lj = labels[knn.indices[i * knn.k + t]];
      if (lj === null || lj === undefined) continue;
      known++;
      if (lj === li) same++;
    }
    if (known === 0) continue;
    sum += same / known;
    counted++;
  }
  return counted > 0 ? sum / counted : NaN;
}

/** Mean over points of |NN_k(a, i) ∩ NN_k(b, i)| / k: how many neighbours the embedding kept. */
export function knnOverlap(a: Knn, b: Knn, k = Math.min(a.k, b.k)): number {
  if (a.n !== b.n) throw new Error(`knn: ${a.n} vs ${b.n} points`);
  if (k > a.k || k > b.k) throw new Error(`knn: asked for ${k} neighbours, have ${a.k} and ${b.k}`);
  if (a.n === 0 || k === 0) return NaN;
  let sum = 0;
  const seen = new Set<number>();
  for (let i = 0; i < a.n; i++) {
    seen.clear();
    for (let t = 0; t < k; t++) seen.add(a.indices[i * a.k + t]);
    let common = 0;
    for (let t = 0; t < k; t++) if (seen.has(b.indices[i * b.k + t])) common++;
    sum += common / k;
  }
  return sum / a.n;
}
