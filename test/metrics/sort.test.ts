import { describe, expect, it } from 'vitest';
import { argsort } from '../../pipeline/metrics/sort.ts';
import { vals } from '../helpers/tiny-models.ts';

/** The reference: a comparator sort on float32 values, NaN as -Infinity, ties by index. */
function reference(values: number[], descending: boolean): number[] {
  const v = values.map((x) => (Number.isNaN(x) ? -Infinity : Math.fround(x)));
  return values.map((_, i) => i).sort((a, b) => (descending ? v[b] - v[a] : v[a] - v[b]) || a - b);
}

describe('argsort', () => {
  it('matches a comparator sort, stable, in both directions, with ties, negatives, NaN, infinities and -0', () => {
    const values = [...vals(3000, 4, 100), ...vals(1000, 5, 2).map((v) => Math.round(v)), NaN, -0, 0, Infinity, -Infinity, 1e-40, -1e-40, 3.4e38];
    for (const desc of [false, true]) expect(Array.from(argsort(values, desc))).toEqual(reference(values, desc));
  });

  it('handles the trivial cases', () => {
    expect(Array.from(argsort([]))).toEqual([]);
    expect(Array.from(argsort([7]))).toEqual([0]);
    expect(Array.from(argsort([2, 1, 2, 1], true))).toEqual([0, 2, 1, 3]);
  });
});
