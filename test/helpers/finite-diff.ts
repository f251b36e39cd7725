/**
 * Central finite differences and tolerant comparisons for gradient tests.
 *
 * f is evaluated in float32 (tfjs) or float64 (the hand-written reference ops); the step must be
 * large enough that float32 rounding of f (~1e-7 |f|) divided by 2*eps stays far below the
 * tolerance, and small enough that no ReLU kink lies inside [x - eps, x + eps] (the tests check
 * that precondition explicitly with `sameSigns`).
 */

/** d f / d x[i] for each i in coords, by (f(x + eps e_i) - f(x - eps e_i)) / (2 eps). */
export function centralDiff(f: (x: Float64Array) => number, x: ArrayLike<number>, coords: readonly number[], eps: number): number[] {
  return coords.map((i) => {
    const plus = Float64Array.from(x);
    const minus = Float64Array.from(x);
    plus[i] += eps;
    minus[i] -= eps;
    return (f(plus) - f(minus)) / (2 * eps);
  });
}

/** |a - b| / max(|a|, |b|, floor): a relative error that does not explode at zero. */
export function relErr(a: number, b: number, floor = 1e-3): number {
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), floor);
}

/** The largest relative error between two equally long lists. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, relErr(a[i], b[i], floor));
  return worst;
}

/** The largest absolute difference between two equally long lists. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return Number.isNaN(worst) ? Infinity : worst;
}

/** True when every entry has the same sign (>0 vs <=0) in both lists: no ReLU kink in between. */
export function sameSigns(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if ((a[i] > 0) !== (b[i] > 0)) return false;
  return true;
}

/** `count` indices spread over [0, n), deterministic. */
export function spreadIndices(n: number, count: number, offset = 0): number[] {
  const out = new Set<number>();
  for (let k = 0; k < count; k++) out.add((offset + Math.floor(((k + 0.5) * n) / count)) % n);
  return [...out];
}
