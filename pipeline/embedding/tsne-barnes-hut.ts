import type { Knn } from './knn.ts';

/**
 * Barnes-Hut t-SNE (van der Maaten 2014, "Accelerating t-SNE using Tree-Based Algorithms",
 * JMLR 15) in 2-D, float64, no dependencies.
 *
 * Input similarities: for each point i, over its k (= 3 * perplexity) nearest neighbours with
 * squared Euclidean distances d_ij,
 *   p_j|i = exp(-beta_i d_ij) / sum_l exp(-beta_i d_il),   beta_i by bisection so that
 *   H(P_i) = -sum_j p_j|i ln p_j|i = ln(perplexity)            (natural log, |dH| <= 1e-5),
 *   p_ij  = (p_j|i + p_i|j) / sum(p_.|. + p_.|.^T)           (= / 2N; sparse, symmetric).
 * Output similarities: w_ij = 1 / (1 + |y_i - y_j|^2), q_ij = w_ij / Z, Z = sum_{k != l} w_kl.
 * Gradient of KL(P || Q), with the factor 4 (the true gradient, as in scikit-learn):
 *   dC/dy_i = 4 [ sum_j p_ij w_ij (y_i - y_j)  -  (1/Z) sum_j w_ij^2 (y_i - y_j) ].
 * The attractive sum runs over the sparse P; the repulsive sum and Z come from a quadtree: a cell
 * of side s whose centre of mass lies at distance r from y_i stands for all its points when
 * s / r < theta (scikit-learn's criterion: full side length, not bhtsne's half-width), and never
 * when it contains y_i. theta = 0 gives the exact sums.
 * Optimisation (scikit-learn's `_gradient_descent`): early exaggeration 12 on P for the first
 * 250 iterations with momentum 0.5, then momentum 0.8; gains +0.2 where the update and gradient
 * disagree in sign, x0.8 otherwise, floor 0.01; update = momentum * update - lr * gains * grad;
 * update and gains reset when the exaggeration ends. Learning rate "auto" is scikit-learn's
 * max(N / early_exaggeration / 4, 50), which with the factor-4 gradient equals openTSNE's
 * N / 12. A fixed number of iterations runs (no early stop), so a seeded run is reproducible.
 */

export interface SparseP {
  n: number;
  /** CSR row pointers [n + 1]. */
  rowPtr: Int32Array;
  cols: Int32Array;
  vals: Float64Array;
}

export interface Calibration {
  /** Conditional p_j|i [n, k], in the order of knn.indices. */
  p: Float64Array;
  beta: Float64Array;
  /** Reached entropy (natural log) per point. */
  entropy: Float64Array;
}

/** Bisection on beta_i so that each row of p_j|i has entropy ln(perplexity) within `tol`. */
export function calibratePerplexity(knn: Knn, perplexity: number, opts: { tol?: number; maxSteps?: number } = {}): Calibration {
  const { n, k } = knn;
  const tol = opts.tol ?? 1e-5;
  const maxSteps = opts.maxSteps ?? 200;
  const target = Math.log(perplexity);
  const p = new Float64Array(n * k);
  const betas = new Float64Array(n);
  const entropy = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const base = i * k;
    // shifting by the nearest distance leaves p_j|i unchanged and avoids exp underflow
    let dmin = Infinity;
    let dmean = 0;
    for (let t = 0; t < k; t++) { dmin = Math.min(dmin, knn.dist2[base + t]); }
    for (let t = 0; t < k; t++) dmean += knn.dist2[base + t] - dmin;
    dmean /= Math.max(k, 1);
    let beta = dmean > 0 ? 1 / dmean : 1;
    let lo = 0;
    let hi = Infinity;
    let h = 0;
    for (let step = 0; step < maxSteps; step++) {
      let sum = 0;
      let sumDp = 0;
      for (let t = 0; t < k; t++) {
        const dd = knn.dist2[base + t] - dmin;
        const v = Math.exp(-beta * dd);
        p[base + t] = v;
        sum += v;
        sumDp += dd * v;
      }
      h = Math.log(sum) + (beta * sumDp) / sum;
      if (Math.abs(h - target) <= tol) break;
      if (h > target) {
        lo = beta;
        beta = hi === Infinity ? beta * 2 : (beta + hi) / 2;
      } else {
        hi = beta;
        beta = (beta + lo) / 2;
      }
    }
    let sum = 0;
    for (let t = 0; t < k; t++) sum += p[base + t];
    for (let t = 0; t < k; t++) p[base + t] /= sum;
    betas[i] = beta;
    entropy[i] = h;
  }
  return { p, beta: betas, entropy };
}

/** The symmetric joint P from conditional rows over a kNN graph, as CSR (columns sorted). */
export function symmetrize(knn: Knn, cond: Float64Array): SparseP {
  const { n, k } = knn;
  const counts = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < k; t++) {
      counts[i + 1]++;
      counts[knn.indices[i * k + t] + 1]++;
    }
  }
  for (let i = 0; i < n; i++) counts[i + 1] += counts[i];
  const fill = counts.slice(0, n);
  const rawCols = new Int32Array(counts[n]);
  const rawVals = new Float64Array(counts[n]);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < k; t++) {
      const j = knn.indices[i * k + t];
      const v = cond[i * k + t];
      rawCols[fill[i]] = j; rawVals[fill[i]++] = v;
      rawCols[fill[j]] = i; rawVals[fill[j]++] = v;
    }
  }
  const rowPtr = new Int32Array(n + 1);
  const cols: number[] = [];
  const vals: number[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const start = counts[i];
    const end = counts[i + 1];
    const order = Array.from({ length: end - start }, (_, t) => start + t).sort((a, b) => rawCols[a] - rawCols[b]);
    let last = -1;
    for (const e of order) {
      if (rawCols[e] === last) vals[vals.length - 1] += rawVals[e];
      else { cols.push(rawCols[e]); vals.push(rawVals[e]); last = rawCols[e]; }
      total += rawVals[e];
    }
    rowPtr[i + 1] = cols.length;
  }
  const out = Float64Array.from(vals);
  if (total > 0) for (let e = 0; e < out.length; e++) out[e] /= total;
  return { n, rowPtr, cols: Int32Array.from(cols), vals: out };
}

/** Calibration and symmetrisation in one step. */
export function jointProbabilities(knn: Knn, perplexity: number): SparseP {
  return symmetrize(knn, calibratePerplexity(knn, perplexity).p);
}

const MAX_DEPTH = 64;

/**
 * A point-region quadtree over 2-D points (square cells), rebuilt every iteration. Node fields
 * live in typed arrays; a leaf holds one point or a list of coincident points.
 */
export class QuadTree {
  private cap = 0;
  size = 0;
  minX = new Float64Array(0);
  minY = new Float64Array(0);
  side = new Float64Array(0);
  sumX = new Float64Array(0);
  sumY = new Float64Array(0);
  count = new Int32Array(0);
  /** Index of the first of four children, or -1 for a leaf. */
  child = new Int32Array(0);
  /** First point of a leaf, or -1. */
  head = new Int32Array(0);
  next: Int32Array;
  private order = new Int32Array(0);

  constructor(n: number) {
    this.next = new Int32Array(n);
    this.grow(Math.max(16, 4 * n));
  }

  private grow(cap: number): void {
    const f64 = (a: Float64Array) => { const b = new Float64Array(cap); b.set(a); return b; };
    const i32 = (a: Int32Array) => { const b = new Int32Array(cap); b.set(a); return b; };
    this.minX = f64(this.minX); this.minY = f64(this.minY); this.side = f64(this.side);
    this.sumX = f64(this.sumX); this.sumY = f64(this.sumY);
    this.count = i32(this.count); this.child = i32(this.child); this.head = i32(this.head);
    this.cap = cap;
  }

  private node(x0: number, y0: number, side: number): number {
    if (this.size === this.cap) this.grow(this.cap * 2);
    const id = this.size++;
    this.minX[id] = x0; this.minY[id] = y0; this.side[id] = side;
    this.sumX[id] = 0; this.sumY[id] = 0; this.count[id] = 0;
    this.child[id] = -1; this.head[id] = -1;
    return id;
  }

  build(y: Float64Array, n: number): void {
    this.size = 0;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      const a = y[2 * i], b = y[2 * i + 1];
      if (a < x0) x0 = a; if (a > x1) x1 = a;
      if (b < y0) y0 = b; if (b > y1) y1 = b;
    }
    if (n === 0) { x0 = y0 = 0; x1 = y1 = 1; }
    const span = Math.max(x1 - x0, y1 - y0);
    const side = span > 0 ? span * (1 + 1e-9) + 1e-300 : 1;
    this.node(x0, y0, side);
    for (let i = 0; i < n; i++) this.insert(y, i);
  }

  /** The points in depth-first order of the leaves. */
  leafOrder(n: number): Int32Array {
    if (this.order.length !== n) this.order = new Int32Array(n);
    const stack: number[] = [0];
    let k = 0;
    while (stack.length > 0) {
      const node = stack.pop()!;
      const c = this.child[node];
      if (c === -1) {
        for (let q = this.head[node]; q !== -1; q = this.next[q]) this.order[k++] = q;
      } else {
        stack.push(c + 3, c + 2, c + 1, c);
      }
    }
    return this.order;
  }

  private quadrant(node: number, px: number, py: number): number {
    const h = this.side[node] / 2;
    return (px >= this.minX[node] + h ? 1 : 0) + (py >= this.minY[node] + h ? 2 : 0);
  }

  private insert(y: Float64Array, p: number): void {
    const px = y[2 * p], py = y[2 * p + 1];
    let node = 0;
    for (let depth = 0; ; depth++) {
      if (this.child[node] === -1) {
        const q = this.head[node];
        if (q === -1 || (y[2 * q] === px && y[2 * q + 1] === py) || depth >= MAX_DEPTH) {
          this.count[node]++;
          this.sumX[node] += px;
          this.sumY[node] += py;
          this.next[p] = q;
          this.head[node] = p;
          return;
        }
        // split: the leaf's (coincident) points move to one child
        const h = this.side[node] / 2;
        const x0 = this.minX[node], y0 = this.minY[node];
        const first = this.node(x0, y0, h);
        this.node(x0 + h, y0, h);
        this.node(x0, y0 + h, h);
        this.node(x0 + h, y0 + h, h);
        this.child[node] = first;
        const c = first + this.quadrant(node, y[2 * q], y[2 * q + 1]);
        this.count[c] = this.count[node];
        this.sumX[c] = this.sumX[node];
        this.sumY[c] = this.sumY[node];
        this.head[c] = q;
        this.head[node] = -1;
      }
      this.count[node]++;
      this.sumX[node] += px;
      this.sumY[node] += py;
      node = this.child[node] + this.quadrant(node, px, py);
    }
  }
}

/** Buffers reused across iterations. */
export interface GradientWork {
  tree: QuadTree;
  stack: Int32Array;
  rep: Float64Array;
  comX: Float64Array;
  comY: Float64Array;
}

export function gradientWork(n: number): GradientWork {
  return { tree: new QuadTree(n), stack: new Int32Array(4 * MAX_DEPTH + 8), rep: new Float64Array(2 * n), comX: new Float64Array(0), comY: new Float64Array(0) };
}

/**
 * The t-SNE gradient at y [n, 2] into `grad` [n, 2] (with the factor 4 and P multiplied by
 * `exaggeration`); returns Z.
 */
export function bhGradient(y: Float64Array, P: SparseP, theta: number, exaggeration: number, grad: Float64Array, work = gradientWork(P.n)): number {
  const n = P.n;
  const { tree, rep } = work;
  let stack = work.stack;
  tree.build(y, n);
  const { minX, minY, side, sumX, sumY, count, child, head, next } = tree;
  const comX = work.comX.length >= tree.size ? work.comX : (work.comX = new Float64Array(tree.size * 2));
  const comY = work.comY.length >= tree.size ? work.comY : (work.comY = new Float64Array(tree.size * 2));
  for (let node = 0; node < tree.size; node++) {
    const c = count[node];
    comX[node] = c > 0 ? sumX[node] / c : 0;
    comY[node] = c > 0 ? sumY[node] / c : 0;
  }
  const theta2 = theta * theta;
  // a cell holding y_i has its centre of mass within side * sqrt(2) of y_i, so it can only pass
  // the test when theta >= 1/sqrt(2); below that the containment check is skipped
  const checkInside = theta >= 0.7;
  let Z = 0;
  // points in tree order: neighbours in turn walk nearly the same cells (cache locality)
  const order = tree.leafOrder(n);
  for (let oi = 0; oi < n; oi++) {
    const i = order[oi];
    const yi0 = y[2 * i], yi1 = y[2 * i + 1];
    let fx = 0, fy = 0, zi = 0;
    let top = 0;
    if (count[0] > 0) stack[top++] = 0;
    while (top > 0) {
      const node = stack[--top];
      const cnt = count[node];
      if (child[node] === -1) {
        for (let q = head[node]; q !== -1; q = next[q]) {
          if (q === i) continue;
          const dx = yi0 - y[2 * q], dy = yi1 - y[2 * q + 1];
          const w = 1 / (1 + dx * dx + dy * dy);
          zi += w;
          fx += w * w * dx;
          fy += w * w * dy;
        }
        continue;
      }
      const dx = yi0 - comX[node], dy = yi1 - comY[node];
      const d2 = dx * dx + dy * dy;
      const s = side[node];
      if (s * s < theta2 * d2 && !(checkInside && yi0 >= minX[node] && yi0 <= minX[node] + s && yi1 >= minY[node] && yi1 <= minY[node] + s)) {
        const w = 1 / (1 + d2);
        zi += cnt * w;
        fx += cnt * w * w * dx;
        fy += cnt * w * w * dy;
      } else {
        if (top + 4 > stack.length) { const bigger = new Int32Array(stack.length * 2); bigger.set(stack); stack = work.stack = bigger; }
        const c = child[node];
        if (count[c] > 0) stack[top++] = c;
        if (count[c + 1] > 0) stack[top++] = c + 1;
        if (count[c + 2] > 0) stack[top++] = c + 2;
        if (count[c + 3] > 0) stack[top++] = c + 3;
      }
    }
    rep[2 * i] = fx;
    rep[2 * i + 1] = fy;
    Z += zi;
  }
  const invZ = Z > 0 ? 1 / Z : 0;
  const { rowPtr, cols, vals } = P;
  for (let i = 0; i < n; i++) {
    const yi0 = y[2 * i], yi1 = y[2 * i + 1];
    let ax = 0, ay = 0;
    for (let e = rowPtr[i]; e < rowPtr[i + 1]; e++) {
      const j = cols[e];
      const dx = yi0 - y[2 * j], dy = yi1 - y[2 * j + 1];
      const pw = vals[e] / (1 + dx * dx + dy * dy);
      ax += pw * dx;
      ay += pw * dy;
    }
    grad[2 * i] = 4 * (exaggeration * ax - rep[2 * i] * invZ);
    grad[2 * i + 1] = 4 * (exaggeration * ay - rep[2 * i + 1] * invZ);
  }
  return Z;
}

/** KL(P || Q) = sum_ij p_ij ln(p_ij / q_ij) over the non-zero p_ij, with q_ij = w_ij / Z. */
export function klDivergence(y: Float64Array, P: SparseP, Z: number): number {
  let kl = 0;
  for (let i = 0; i < P.n; i++) {
    for (let e = P.rowPtr[i]; e < P.rowPtr[i + 1]; e++) {
      const p = P.vals[e];
      if (!(p > 0)) continue;
      const j = P.cols[e];
      const dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      const q = 1 / (1 + dx * dx + dy * dy) / Z;
      kl += p * Math.log(p / Math.max(q, Number.MIN_VALUE));
    }
  }
  return kl;
}

export interface TsneOptions {
  theta?: number;
  iterations?: number;
  earlyExaggeration?: number;
  exaggerationIterations?: number;
  learningRate?: number | 'auto';
  momentum?: number;
  finalMomentum?: number;
  minGain?: number;
  /** Called after every iteration with the number done. */
  onIteration?: (done: number) => void;
}

export interface TsneResult {
  /** Embedding [n, 2]. */
  y: Float64Array;
  iterations: number;
  learningRate: number;
  /** KL(P || Q) at the end (Z from the tree). */
  kl: number;
}

/** Learning rate "auto" (scikit-learn >= 1.2): max(N / early_exaggeration / 4, 50). */
export function autoLearningRate(n: number, earlyExaggeration = 12): number {
  return Math.max(n / earlyExaggeration / 4, 50);
}

/** Runs the optimisation from `init` [n, 2] (copied) on the joint P. */
export function bhTsne(P: SparseP, init: Float64Array, opts: TsneOptions = {}): TsneResult {
  const n = P.n;
  if (init.length !== 2 * n) throw new Error(`tsne: init has ${init.length} values for ${n} points`);
  const theta = opts.theta ?? 0.5;
  const iterations = opts.iterations ?? 1000;
  const exaggeration = opts.earlyExaggeration ?? 12;
  const exIters = opts.exaggerationIterations ?? 250;
  const lr = opts.learningRate === undefined || opts.learningRate === 'auto' ? autoLearningRate(n, exaggeration) : opts.learningRate;
  const minGain = opts.minGain ?? 0.01;
  const y = Float64Array.from(init);
  const grad = new Float64Array(2 * n);
  const update = new Float64Array(2 * n);
  const gains = new Float64Array(2 * n).fill(1);
  const work = gradientWork(n);
  let Z = 0;
  for (let it = 0; it < iterations; it++) {
    const early = it < exIters;
    if (it === exIters) { update.fill(0); gains.fill(1); }
    const momentum = early ? (opts.momentum ?? 0.5) : (opts.finalMomentum ?? 0.8);
    Z = bhGradient(y, P, theta, early ? exaggeration : 1, grad, work);
    for (let c = 0; c < 2 * n; c++) {
      const g = grad[c];
      let gain = update[c] * g < 0 ? gains[c] + 0.2 : gains[c] * 0.8;
      if (gain < minGain) gain = minGain;
      gains[c] = gain;
      update[c] = momentum * update[c] - lr * gain * g;
      y[c] += update[c];
    }
    opts.onIteration?.(it + 1);
  }
  if (n > 1) Z = bhGradient(y, P, theta, 1, grad, work);
  return { y, iterations, learningRate: lr, kl: n > 1 ? klDivergence(y, P, Z) : 0 };
}
