/**
 * The forward-convolution forms of the convolution input gradients (compute/conv-gradients.ts)
 * against tfjs's own Conv2DBackpropInput / depthwise backprop, on the cpu backend and without
 * installing the override, over strides, paddings (same, valid, explicit), even and odd kernels,
 * dilations, input sizes the strides do not divide, and depthwise multipliers.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { conv2dInputGradient, depthwiseInputGradient } from '../../pipeline/compute/conv-gradients.ts';
import { maxAbsDiff } from '../helpers/finite-diff.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];
const CASES: { h: number; w: number; k: [number, number]; s: [number, number]; pad: Pad; d: number }[] = [
  { h: 7, w: 7, k: [3, 3], s: [1, 1], pad: 'same', d: 1 },
  { h: 8, w: 7, k: [3, 3], s: [2, 2], pad: 'same', d: 1 },
  { h: 9, w: 10, k: [2, 2], s: [2, 2], pad: 'same', d: 1 },
  { h: 9, w: 8, k: [4, 3], s: [3, 2], pad: 'same', d: 1 },
  { h: 9, w: 9, k: [3, 3], s: [2, 2], pad: 'valid', d: 1 },
  { h: 10, w: 9, k: [5, 2], s: [3, 3], pad: 'valid', d: 1 },
  { h: 8, w: 8, k: [1, 1], s: [2, 2], pad: 'valid', d: 1 },
  { h: 9, w: 9, k: [3, 3], s: [1, 1], pad: 'same', d: 2 },
  { h: 11, w: 10, k: [3, 2], s: [1, 1], pad: 'valid', d: 2 },
  { h: 8, w: 9, k: [3, 3], s: [2, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]], d: 1 },
];

/**
 * The kernel with d - 1 zeros between its taps: a dilated convolution is the undilated one with it,
 * so tfjs's gradient (which refuses dilations > 1) gives the reference there.
 */
function dilateKernel(f: tf.Tensor4D, d: number): tf.Tensor4D {
  if (d === 1) return f.clone();
  const [kh, kw, ci, co] = f.shape;
  const spread = tf.pad(tf.reshape(f, [kh, 1, kw, 1, ci, co]), [[0, 0], [0, d - 1], [0, 0], [0, d - 1], [0, 0], [0, 0]]);
  return tf.slice(tf.reshape(spread, [kh * d, kw * d, ci, co]), [0, 0, 0, 0], [(kh - 1) * d + 1, (kw - 1) * d + 1, ci, co]) as tf.Tensor4D;
}

describe('convolution input gradients as forward convolutions', () => {
  for (const c of CASES) {
    const label = `${c.h}x${c.w}, kernel ${c.k}, stride ${c.s}, ${typeof c.pad === 'string' ? c.pad : `explicit ${JSON.stringify(c.pad)}`}, dilation ${c.d}`;

    it(`conv2d: ${label}`, () => {
      const x = tf.randomNormal([2, c.h, c.w, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const f = tf.randomNormal([...c.k, 3, 5], 0, 1, 'float32', 2) as tf.Tensor4D;
      const y = tf.conv2d(x, f, c.s, c.pad, 'NHWC', c.d);
      const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 3) as tf.Tensor4D;
      const fd = dilateKernel(f, c.d);
      expect(maxAbsDiff(tf.conv2d(x, fd, c.s, c.pad).dataSync(), y.dataSync())).toBeLessThan(1e-4);
      const want = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, fd, c.s, c.pad), dy)))(x);
      const got = conv2dInputGradient(dy, f, x.shape, { strides: c.s, pad: c.pad, dilations: c.d });
      expect(got.shape).toEqual(x.shape);
      expect(maxAbsDiff(got.dataSync(), want.dataSync())).toBeLessThan(1e-4);
      tf.dispose([x, f, fd, y, dy, want, got]);
    });

    if (typeof c.pad === 'string') {
      it(`depthwise, multipliers 1 and 2: ${label}`, () => {
        for (const m of [1, 2]) {
          const x = tf.randomNormal([2, c.h, c.w, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
          const f = tf.randomNormal([...c.k, 3, m], 0, 1, 'float32', 5) as tf.Tensor4D;
          const y = tf.depthwiseConv2d(x, f, c.s, c.pad as 'same' | 'valid', 'NHWC', c.d);
          const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 6) as tf.Tensor4D;
          const fd = dilateKernel(f, c.d);
          const want = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(xx as tf.Tensor4D, fd, c.s, c.pad as 'same' | 'valid'), dy)))(x);
          const got = depthwiseInputGradient(dy, f, x.shape, { strides: c.s, pad: c.pad, dilations: c.d });
          expect(maxAbsDiff(got.dataSync(), want.dataSync()), `multiplier ${m}`).toBeLessThan(1e-4);
          tf.dispose([x, f, fd, y, dy, want, got]);
        }
      });
    }
  }
});

describe('installed as the Conv2D and DepthwiseConv2dNative gradients', () => {
  it('tf.grad uses them (dilated convolutions get gradients) and the filter gradient stays tfjs\'s', async () => {
    const { installFastConvGradients } = await import('../../pipeline/compute/conv-gradients.ts');
    const x = tf.randomNormal([1, 9, 9, 2], 0, 1, 'float32', 7) as tf.Tensor4D;
    const f = tf.randomNormal([3, 3, 2, 4], 0, 1, 'float32', 8) as tf.Tensor4D;
    const dy = tf.randomNormal([1, 9, 9, 4], 0, 1, 'float32', 9) as tf.Tensor4D;
    const fd = dilateKernel(f, 2);
    const want = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, fd, 1, 'same'), dy)))(x);
    const wantFilter = tf.grad((ff: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, ff as tf.Tensor4D, 1, 'same'), dy)))(f);
    installFastConvGradients();
    const got = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, f, 1, 'same', 'NHWC', 2), dy)))(x);
    expect(maxAbsDiff(got.dataSync(), want.dataSync())).toBeLessThan(1e-4);
    const gotFilter = tf.grad((ff: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, ff as tf.Tensor4D, 1, 'same'), dy)))(f);
    expect(maxAbsDiff(gotFilter.dataSync(), wantFilter.dataSync())).toBeLessThan(1e-4);
    tf.dispose([x, f, dy, fd, want, wantFilter, got, gotFilter]);
  });
});
