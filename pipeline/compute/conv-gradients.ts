import * as tf from '@tensorflow/tfjs';

/**
 * Input gradients of 2-D and depthwise convolutions as forward convolutions, for the wasm
 * backend, whose Conv2DBackpropInput is a plain loop (an order of magnitude slower than its
 * XNNPACK forward convolution on the same shapes; see the README's Speed section) and whose
 * depthwise backward kernels are missing (bridged to the cpu backend).
 *
 * For a forward convolution y[o] = sum_j x[o s + j d - p_top] W[j] (per spatial axis; stride s,
 * dilation d, kernel size k, padding p_top as TensorFlow computes it for 'same', 'valid' or
 * explicit padding), the input gradient is
 *   dx[i] = sum_{o, j: o s + j d - p_top = i} dy[o] W[j]
 *         = sum_j' D[i + j' d] W[k - 1 - j']                 (a correlation, stride 1, dilation d)
 * where D is dy dilated by s (s - 1 zeros between elements) and padded by (k - 1) d - p_top
 * before and H + p_top - (H_out - 1) s - 1 after (cropped instead where negative), and the
 * kernel is rotated 180 degrees with its input and output channels swapped:
 *   W' = transpose(reverse(W, [0, 1]), [0, 1, 3, 2])         [kh, kw, c_out, c_in].
 * Depthwise (W [kh, kw, c, m]): the same per channel with reverse(W) reshaped to
 * [kh, kw, c m, 1], then the m multiplier channels of each input channel summed.
 * The filter gradients are tfjs's own (convlens never asks for them). Unlike tfjs's, these input
 * gradients also exist for dilations > 1.
 */

interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** dy [n, Ho, Wo, c] dilated by the strides and padded / cropped so a stride-1 correlation gives dx. */
function spreadAndPad(dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const [n, ho, wo, c] = dy.shape;
  const { strideHeight: sh, strideWidth: sw, inHeight: H, inWidth: W } = info;
  let d: tf.Tensor4D = dy;
  if (sh > 1 || sw > 1) {
    const cells = tf.reshape(dy, [n, ho, 1, wo, 1, c]);
    const spread = tf.pad(cells, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
    d = tf.slice(tf.reshape(spread, [n, ho * sh, wo * sw, c]) as tf.Tensor4D, [0, 0, 0, 0], [n, (ho - 1) * sh + 1, (wo - 1) * sw + 1, c]);
  }
  const before = [(info.filterHeight - 1) * info.dilationHeight - info.padInfo.top, (info.filterWidth - 1) * info.dilationWidth - info.padInfo.left];
  const after = [H + info.padInfo.top - (ho - 1) * sh - 1, W + info.padInfo.left - (wo - 1) * sw - 1];
  // negative amounts: crop instead of pad
  const crop = [Math.max(0, -before[0]), Math.max(0, -after[0]), Math.max(0, -before[1]), Math.max(0, -after[1])];
  if (crop.some((v) => v > 0)) {
    d = tf.slice(d, [0, crop[0], crop[2], 0], [n, d.shape[1] - crop[0] - crop[1], d.shape[2] - crop[2] - crop[3], c]);
  }
  return tf.pad(d, [[0, 0], [Math.max(0, before[0]), Math.max(0, after[0])], [Math.max(0, before[1]), Math.max(0, after[1])], [0, 0]]);
}

/**
 * The kernel turned 180 degrees in its two spatial axes, [kh, kw, ...] -> [kh, kw, ...] with
 * tap (i, j) moved to (kh - 1 - i, kw - 1 - j): a gather of whole rows (wasm's Reverse kernel
 * was most of a gradient pass on models with large kernels); nothing for 1x1 kernels.
 */
function rotate180(filter: tf.Tensor4D): tf.Tensor4D {
  const [kh, kw, a, b] = filter.shape;
  if (kh * kw === 1) return filter;
  const taps = tf.tensor1d(Array.from({ length: kh * kw }, (_, t) => kh * kw - 1 - t), 'int32');
  return tf.reshape(tf.gather(tf.reshape(filter, [kh * kw, a * b]), taps), [kh, kw, a, b]) as tf.Tensor4D;
}

function convInfo(xShape: number[], filterShape: number[], a: ConvAttrs, depthwise: boolean): tf.backend_util.Conv2DInfo {
  const pad = a.pad as 'valid' | 'same' | number;  // explicit padding too: computeConv2DInfo reads it
  return tf.backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number],
    a.strides, a.dilations ?? 1, pad, a.dimRoundingMode, depthwise, 'channelsLast');
}

/** d/dx of conv2d(x, filter) for x of shape xShape, NHWC. */
export function conv2dInputGradient(dy: tf.Tensor4D, filter: tf.Tensor4D, xShape: number[], a: ConvAttrs): tf.Tensor4D {
  return tf.tidy(() => {
    const info = convInfo(xShape, filter.shape, a, false);

    const rotated = tf.transpose(rotate180(filter), [0, 1, 3, 2]) as tf.Tensor4D;
    return tf.conv2d(spreadAndPad(dy, info), rotated, 1, 'valid', 'NHWC', [info.dilationHeight, info.dilationWidth]);
  });
}

/** d/dx of depthwiseConv2d(x, filter) for x of shape xShape, NHWC. */
export function depthwiseInputGradient(dy: tf.Tensor4D, filter: tf.Tensor4D, xShape: number[], a: ConvAttrs): tf.Tensor4D {
  return tf.tidy(() => {
    const info = convInfo(xShape, filter.shape, a, true);
    const [kh, kw, c, m] = filter.shape;
    const rotated = tf.reshape(rotate180(filter), [kh, kw, c * m, 1]) as tf.Tensor4D;
    const per = tf.depthwiseConv2d(spreadAndPad(dy, info), rotated, 1, 'valid', 'NHWC', [info.dilationHeight, info.dilationWidth]);
    if (m === 1) return per;
    const [n, h, w] = per.shape;
    return tf.sum(tf.reshape(per, [n, h, w, c, m]), 4) as tf.Tensor4D;
  });
}

type GradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => Record<string, () => tf.Tensor>;

let installed = false;

/**
 * Replaces the input-gradient half of tfjs's Conv2D and DepthwiseConv2dNative gradients with the
 * forward-convolution forms above (NHWC only; anything else keeps tfjs's own). For one process;
 * called when the wasm backend is chosen.
 */
export function installFastConvGradients(): void {
  if (installed) return;
  installed = true;
  const wrap = (kernelName: string, inputGrad: typeof conv2dInputGradient) => {
    const original = tf.getGradient(kernelName) as unknown as { kernelName: string; inputsToSave?: string[]; gradFunc: GradFunc } | undefined;
    if (!original) return;
    tf.registerGradient({
      ...original,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
        const a = attrs as unknown as ConvAttrs;
        if ((a.dataFormat ?? 'NHWC') !== 'NHWC') return original.gradFunc(dy, saved, attrs);
        const [x, filter] = saved;
        // tfjs's own gradient only for the filter, and only when asked (it refuses dilations > 1)
        return {
          x: () => inputGrad(dy as tf.Tensor4D, filter as tf.Tensor4D, x.shape, a),
          filter: () => original.gradFunc(dy, saved, attrs).filter(),
        };
      },
    } as unknown as tf.GradConfig);
  };
  wrap('Conv2D', conv2dInputGradient);
  wrap('DepthwiseConv2dNative', depthwiseInputGradient);
}
