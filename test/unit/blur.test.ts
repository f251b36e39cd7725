/**
 * The one Gaussian blur (pipeline/blur.ts): the 'scipy' rule is scipy.ndimage.gaussian_filter's
 * (normalised taps, radius round(4 sigma), symmetric edges), used by integrated gradients and the
 * insertion metric; the 'three-sigma' rule is the class visualization's blur
 * (image-transforms.ts), value for value.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { gaussianBlur } from '../../pipeline/blur.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { maxAbsDiff } from '../helpers/finite-diff.ts';
import { vals } from '../helpers/tiny-models.ts';

describe('gaussianBlur', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('blurs with a normalised Gaussian, symmetric edges, radius round(4 sigma)', () => {
    // an impulse in the middle of a 21x21 image spreads into the separable kernel g(di) g(dj)
    const sigma = 1.5;
    const impulse = tf.buffer([1, 21, 21, 2]);
    impulse.set(1, 0, 10, 10, 0);
    const x = impulse.toTensor() as tf.Tensor4D;
    const y = gaussianBlur(x, sigma);
    const out = y.dataSync();
    const r = 6;
    const g = Array.from({ length: 2 * r + 1 }, (_, k) => Math.exp(-((k - r) ** 2) / (2 * sigma * sigma)));
    const z = g.reduce((a, b) => a + b, 0);
    for (let i = 0; i < 21; i++) for (let j = 0; j < 21; j++) {
      const di = i - 10;
      const dj = j - 10;
      const want = Math.abs(di) <= r && Math.abs(dj) <= r ? (g[di + r] / z) * (g[dj + r] / z) : 0;
      expect(out[(i * 21 + j) * 2]).toBeCloseTo(want, 6);
      expect(out[(i * 21 + j) * 2 + 1]).toBe(0);
    }
    // symmetric edges: a constant image stays constant; a ramp's edge pixel averages its mirror
    const c = gaussianBlur(tf.fill([1, 5, 6, 3], 0.7) as tf.Tensor4D, 2);
    expect(maxAbsDiff(c.dataSync(), new Float32Array(90).fill(0.7))).toBeLessThan(1e-6);
    tf.dispose([x, y, c]);
  });

});
