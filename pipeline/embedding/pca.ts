/**
 * Principal component analysis by eigen-decomposition, in float64, deterministic.
 * For centred data Xc [n, d] the components are the leading eigenvectors of the covariance
 * C = Xc^T Xc / (n - 1) [d, d]; when n < d the smaller Gram matrix G = Xc Xc^T [n, n] is
 * decomposed instead and v = Xc^T u / |Xc^T u|. The symmetric eigen-problem is solved by
 * Householder tridiagonalisation and the implicit QL algorithm (tred2 / tql2 of EISPACK, as in
 * JAMA), O(m^3) for m = min(n, d).
 * Sign convention (scikit-learn's svd_flip on the components, `u_based_decision=False`): each
 * component's entry of largest magnitude is positive.
 */

export interface Pca {
  /** Principal axes [k, d], unit length, by decreasing variance. */
  components: Float64Array;
  /** Per-feature mean [d]. */
  mean: Float64Array;
  /** Variance along each component [k] (eigenvalue of C, divisor n - 1). */
  variances: Float64Array;
  /** Scores (Xc projected on the components) [n, k]. */
  projected: Float64Array;
  k: number;
}

/**
 * Symmetric product R R^T [m, m] of the rows of R [m, len] (both triangles filled). Four rows
 * against two columns per pass, as in knn.ts.
 */
export function gram(r: Float64Array, m: number, len: number): Float64Array {
  const g = new Float64Array(m * m);
  for (let i0 = 0; i0 < m; i0 += 4) {
    const rows = Math.min(4, m - i0);
    const a = [0, 1, 2, 3].map((p) => (i0 + Math.min(p, rows - 1)) * len);
    const [a0, a1, a2, a3] = a;
    for (let j = i0; j < m; j += 2) {
      const two = j + 1 < m;
      const b = j * len;
      const c = two ? b + len : b;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, t0 = 0, t1 = 0, t2 = 0, t3 = 0;
      for (let t = 0; t < len; t++) {
        const xb = r[b + t];
        const xc = r[c + t];
        const y0 = r[a0 + t], y1 = r[a1 + t], y2 = r[a2 + t], y3 = r[a3 + t];
        s0 += y0 * xb; s1 += y1 * xb; s2 += y2 * xb; s3 += y3 * xb;
        t0 += y0 * xc; t1 += y1 * xc; t2 += y2 * xc; t3 += y3 * xc;
      }
      const s = [s0, s1, s2, s3];
      const tt = [t0, t1, t2, t3];
      for (let p = 0; p < rows; p++) {
        const i = i0 + p;
        if (j >= i) { g[i * m + j] = s[p]; g[j * m + i] = s[p]; }
        if (two && j + 1 >= i) { g[i * m + j + 1] = tt[p]; g[(j + 1) * m + i] = tt[p]; }
      }
    }
  }
  return g;
}

/**
 * Eigen-decomposition of a symmetric matrix A [m, m] (row-major; only read). Returns the
 * eigenvalues in decreasing order and the eigenvectors as rows [m, m] in the same order.
 */
export function symmetricEigen(a: Float64Array, m: number): { values: Float64Array; vectors: Float64Array } {
  if (a.length !== m * m) throw new Error(`eigen: ${a.length} values for [${m}, ${m}]`);
  if (m === 0) return { values: new Float64Array(0), vectors: new Float64Array(0) };
  const W: Float64Array[] = Array.from({ length: m }, (_, i) => a.slice(i * m, (i + 1) * m));
  const d = new Float64Array(m);
  const e = new Float64Array(m);
  tred2(W, d, e, m);
  tql2(W, d, e, m);
  const order = Array.from({ length: m }, (_, i) => i).sort((p, q) => d[q] - d[p] || p - q);
  const values = new Float64Array(m);
  const vectors = new Float64Array(m * m);
  order.forEach((src, dst) => {
    values[dst] = d[src];
    vectors.set(W[src], dst * m);
  });
  return { values, vectors };
}

/**
 * Householder reduction to tridiagonal form: JAMA's tred2 written on T = V^T (every V[r][c] of
 * JAMA is T[c][r] here), so its inner loops run along rows. For symmetric input T = V = A; on
 * return the rows of T are the columns of the transformation.
 */
function tred2(T: Float64Array[], d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = T[j][n - 1];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = T[j][i - 1];
        T[j][i] = 0;
        T[i][j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      const Ti = T[i];
      for (let j = 0; j < i; j++) {
        const Tj = T[j];
        f = d[j];
        Ti[j] = f;
        g = e[j] + Tj[j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const t = Tj[k];
          g += t * d[k];
          e[k] += t * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        const Tj = T[j];
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) Tj[k] -= f * e[k] + g * d[k];
        d[j] = Tj[i - 1];
        Tj[i] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    T[i][n - 1] = T[i][i];
    T[i][i] = 1;
    const h = d[i + 1];
    const Ti1 = T[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = Ti1[k] / h;
      for (let j = 0; j <= i; j++) {
        const Tj = T[j];
        let g = 0;
        for (let k = 0; k <= i; k++) g += Ti1[k] * Tj[k];
        for (let k = 0; k <= i; k++) Tj[k] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) Ti1[k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = T[j][n - 1];
    T[j][n - 1] = 0;
  }
  T[n - 1][n - 1] = 1;
  e[0] = 0;
}

/** Implicit QL on the tridiagonal (d, e) (JAMA's tql2); W holds eigenvectors as rows. */
function tql2(W: Float64Array[], d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 100) throw new Error('eigen: the QL iteration did not converge');
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          const wi = W[i];
          const wi1 = W[i + 1];
          for (let k = 0; k < n; k++) {
            h = wi1[k];
            wi1[k] = s * wi[k] + c * h;
            wi[k] = c * wi[k] - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

/** The first `k` principal components of x [n, d] (k is capped at min(n, d)). */
export function pca(x: Float64Array, n: number, d: number, k: number): Pca {
  if (x.length !== n * d) throw new Error(`pca: ${x.length} values for [${n}, ${d}]`);
  k = Math.max(0, Math.min(k, n, d));
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) mean[t] += x[i * d + t];
  for (let t = 0; t < d; t++) mean[t] /= Math.max(n, 1);
  const xc = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) xc[i * d + t] = x[i * d + t] - mean[t];
  const components = new Float64Array(k * d);
  const variances = new Float64Array(k);
  const denom = Math.max(n - 1, 1);
  if (d <= n) {
    const xt = new Float64Array(d * n);
    for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) xt[t * n + i] = xc[i * d + t];
    const { values, vectors } = symmetricEigen(gram(xt, d, n), d);
    components.set(vectors.subarray(0, k * d));
    for (let c = 0; c < k; c++) variances[c] = Math.max(0, values[c]) / denom;
  } else {
    const { values, vectors } = symmetricEigen(gram(xc, n, d), n);
    for (let c = 0; c < k; c++) {
      const v = components.subarray(c * d, (c + 1) * d);
      for (let i = 0; i < n; i++) {
        const u = vectors[c * n + i];
        if (u === 0) continue;
        for (let t = 0; t < d; t++) v[t] += u * xc[i * d + t];
      }
      let norm = 0;
      for (let t = 0; t < d; t++) norm += v[t] * v[t];
      norm = Math.sqrt(norm);
      if (norm > 0) for (let t = 0; t < d; t++) v[t] /= norm;
      variances[c] = Math.max(0, values[c]) / denom;
    }
  }
  for (let c = 0; c < k; c++) {
    const v = components.subarray(c * d, (c + 1) * d);
    let big = 0;
    for (let t = 1; t < d; t++) if (Math.abs(v[t]) > Math.abs(v[big])) big = t;
    if (v[big] < 0) for (let t = 0; t < d; t++) v[t] = -v[t];
  }
  const projected = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += xc[i * d + t] * components[c * d + t];
      projected[i * k + c] = s;
    }
  }
  return { components, mean, variances, projected, k };
}
