import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from '../errors.ts';

/**
 * Gradients tfjs-core does not register but converted graphs need.
 *
 * StridedSlice (Keras' x[:, :, :, :k] in a GraphModel): the slice of x at positions
 * begin[d] + k * stride[d], k < n[d], so dx is dy scattered back to those positions and zero
 * elsewhere. dy is reshaped to the slice's dense shape n (before shrink / new axes), every axis
 * with stride s > 1 is spread out with s - 1 zeros after each element, and the result is padded
 * by begin[d] before and the rest of the axis after. Negative strides (reversals) are refused.
 */
function stridedSliceGrad(dy: tf.Tensor, x: tf.Tensor, attrs: Record<string, unknown>): tf.Tensor {
  const a = attrs as { begin: number[]; end: number[]; strides: number[]; beginMask: number; endMask: number; ellipsisMask: number; newAxisMask: number; shrinkAxisMask: number };
  const info = tf.slice_util.sliceInfo(x.shape, a.begin, a.end, a.strides, a.beginMask, a.endMask, a.ellipsisMask, a.newAxisMask, a.shrinkAxisMask);
  if (info.strides.some((s) => s <= 0)) {
    throw new ConvlensError('the model reverses an axis with a strided slice (a negative stride, as x[..., ::-1]), which has no gradient here', {
      hint: 'Export the model without the reversal (a BGR flip of the input is input.channelOrder: bgr in viz.yaml), or switch off the methods that differentiate through it.',
    });
  }
  const n = info.begin.map((b, d) => Math.max(0, Math.ceil((info.end[d] - b) / info.strides[d])));
  let g = tf.reshape(dy, n);
  const lengths = [...n];
  info.strides.forEach((s, d) => {
    if (s === 1 || n[d] === 0) return;
    const shape = g.shape;
    const withAxis = tf.reshape(g, [...shape.slice(0, d + 1), 1, ...shape.slice(d + 1)]);
    const pads = withAxis.shape.map((_, k): [number, number] => (k === d + 1 ? [0, s - 1] : [0, 0]));
    const spread = tf.reshape(tf.pad(withAxis, pads), [...shape.slice(0, d), shape[d] * s, ...shape.slice(d + 1)]);
    lengths[d] = Math.min(shape[d] * s, x.shape[d] - info.begin[d]);
    g = tf.slice(spread, 0, spread.shape.map((v, k) => (k === d ? lengths[d] : v)));
  });
  return tf.pad(g, info.begin.map((b, d): [number, number] => [b, x.shape[d] - b - lengths[d]]));
}

if (!tf.getGradient('StridedSlice')) {
  tf.registerGradient({
    kernelName: 'StridedSlice',
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: unknown) => ({
      x: () => stridedSliceGrad(dy as tf.Tensor, saved[0], attrs as Record<string, unknown>),
    }),
  } as unknown as tf.GradConfig);
}
