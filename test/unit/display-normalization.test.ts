import { describe, expect, it } from 'vitest';
import { CAPTUM_OUTLIERS, describeScaling, normalizeForDisplay, normalizeMinMax, normalizeOutliers, outlierThreshold } from '../../pipeline/render.ts';

/**
 * The display scaling of sparse attribution maps: Captum's visualize_image_attr rule
 * (outlier_perc = 2): t = the first sorted |v| at which the running sum reaches 98% of the total,
 * then min(|v| / t, 1). Every expected value below is worked out by hand.
 */
describe('display normalisation of heatmaps', () => {
  it('one outlier: min-max leaves every other pixel at 0.1, the outlier rule shows them at full scale', () => {
    // 1000 pixels: 500 zeros, 499 ones, one 10. Total 509, 98% of it 498.82; the running sum of the
    // sorted values is 0 over the zeros, then 1, 2, ..., 499 over the ones: it first reaches
    // 498.82 at the last 1, so t = 1 (the 10 holds 10 / 509 < 2% of the total).
    const map = new Float32Array(1000);
    map.fill(1, 500, 999);
    map[999] = 10;
    expect(outlierThreshold(map, 2)).toBe(1);

    const minMax = normalizeMinMax(map);
    expect(minMax[0]).toBe(0);
    expect(minMax[500]).toBeCloseTo(0.1, 7); // (1 - 0) / (10 - 0)
    expect(minMax[999]).toBe(1);

    const clipped = normalizeOutliers(map, 2);
    expect(clipped[0]).toBe(0);
    expect(clipped[500]).toBe(1);
    expect(clipped[998]).toBe(1);
    expect(clipped[999]).toBe(1); // 10 / 1 clipped to 1
  });

  it('an outlier that holds more than 2% of the total stays the scale, as in Captum', () => {
    // 99 ones and one 50: total 149, 98% = 146.02; the ones sum to 99 < 146.02, so t = 50
    const map = [...new Array<number>(99).fill(1), 50];
    expect(outlierThreshold(map, 2)).toBe(50);
    expect(normalizeOutliers(map, 2)[0]).toBeCloseTo(0.02, 7);
  });

  it('works on |v| with other percentages: [0, 1, 2, 3, 4] and [-4, 3, -2, 1, 0]', () => {
    // sorted 0 1 2 3 4, running sums 0 1 3 6 10
    expect(outlierThreshold([0, 1, 2, 3, 4], 20)).toBe(4); // 80% of 10 = 8: first reached at 10
    expect(outlierThreshold([0, 1, 2, 3, 4], 50)).toBe(3); // 50% of 10 = 5: first reached at 6
    expect(outlierThreshold([0, 1, 2, 3, 4], 100)).toBe(0); // 0% of 10: reached at once
    const half = Array.from(normalizeOutliers([-4, 3, -2, 1, 0], 50));
    [1, 1, 2 / 3, 1 / 3, 0].forEach((v, i) => expect(half[i]).toBeCloseTo(v, 6));
    expect(Array.from(normalizeOutliers([0, 1, 2, 3, 4], 0))).toEqual([0, 0.25, 0.5, 0.75, 1]); // t = max: v / max
  });

  it('an all-zero map stays black; non-finite values count as 0', () => {
    expect(Array.from(normalizeOutliers([0, 0, 0], 2))).toEqual([0, 0, 0]);
    expect(outlierThreshold([], 2)).toBe(0);
    expect(Array.from(normalizeOutliers([NaN, 2, 2], 2))).toEqual([0, 1, 1]);
    expect(() => outlierThreshold([1], 101)).toThrow(RangeError);
  });

  it('normalizeForDisplay picks the rule and reports the value at the top of the colour map', () => {
    const map = [2, 4, 6];
    expect(normalizeForDisplay(map, 'min-max')).toEqual({ values: Float32Array.from([0, 0.5, 1]), top: 6 });
    // total 12, 98% = 11.76: running sums 2, 6, 12, so t = 6 and this map shows as v / 6
    const c = normalizeForDisplay(map, CAPTUM_OUTLIERS);
    expect(c.top).toBe(6);
    [1 / 3, 2 / 3, 1].forEach((v, i) => expect(c.values[i]).toBeCloseTo(v, 6));
    expect(describeScaling('min-max')).toBe('min-max');
    expect(describeScaling(CAPTUM_OUTLIERS)).toMatch(/2%/);
  });
});
