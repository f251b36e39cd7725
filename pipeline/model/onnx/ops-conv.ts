import * as tf from '@tensorflow/tfjs';
import { BATCH_NORM_OP, type GraphAttr } from '../graph-rewrite.ts';
import type { OnnxNode } from './decode.ts';
import type { OpTable } from './op-def.ts';
import { attr, gattr, type Translator, type Value } from './translator.ts';

/**
 * Convolutions, pooling and batch normalization. Inputs are brought to NHWC (Translator.nhwc);
 * outputs are NHWC. Padding is always explicit: a Pad / PadV2 node [[0,0],[t,b],[l,r],[0,0]]
 * before a VALID convolution or pool (none when all four amounts are zero), which is what
 * receptive-field code reads (GraphAdapter.padAmounts).
 */

/** -FLT_MAX: the padding of a max pool, never the maximum of a window that holds an input cell. */
export const LOWEST_FLOAT = -3.4028234663852886e38;

interface Window {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
}

function window(n: OnnxNode, kernelFromWeights?: [number, number]): Window {
  const k = attr.ints(n, 'kernel_shape') ?? kernelFromWeights ?? [1, 1];
  const s = attr.ints(n, 'strides') ?? [1, 1];
  const d = attr.ints(n, 'dilations') ?? [1, 1];
  return { kernel: [k[0], k[1]], strides: [s[0], s[1]], dilations: [d[0], d[1]] };
}

/**
 * Padding [top, bottom, left, right] of a 2-D window over an [h, w] input: ONNX `pads`
 * [top, left, bottom, right] (x1_begin, x2_begin, x1_end, x2_end) with auto_pad NOTSET, zeros with
 * VALID, or SAME_UPPER / SAME_LOWER: total = max(0, (ceil(in / s) - 1) s + (k - 1) d + 1 - in) per
 * axis, the odd cell at the end (UPPER, TensorFlow's SAME) or at the beginning (LOWER).
 */
function explicitPads(n: OnnxNode, inHW: [number, number], w: Window): [number, number, number, number] {
  const mode = attr.str(n, 'auto_pad', 'NOTSET');
  if (mode === 'VALID') return [0, 0, 0, 0];
  if (mode === 'SAME_UPPER' || mode === 'SAME_LOWER') {
    const out: number[] = [];
    for (const a of [0, 1]) {
      const total = Math.max(0, (Math.ceil(inHW[a] / w.strides[a]) - 1) * w.strides[a] + (w.kernel[a] - 1) * w.dilations[a] + 1 - inHW[a]);
      const begin = mode === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
      out.push(begin, total - begin);
    }
    return out as [number, number, number, number];
  }
  const p = attr.ints(n, 'pads') ?? [0, 0, 0, 0];
  return [p[0], p[2], p[1], p[3]];
}

const checkAutoPad = (n: OnnxNode) => {
  const mode = attr.str(n, 'auto_pad', 'NOTSET');
  return ['NOTSET', 'VALID', 'SAME_UPPER', 'SAME_LOWER'].includes(mode) ? undefined : `auto_pad=${mode}`;
};

const only2d = (n: OnnxNode) => {
  const k = attr.ints(n, 'kernel_shape');
  return k && k.length !== 2 ? `a ${k.length}-D window (only 2-D images are supported)` : undefined;
};

/** Emits the Pad node (fill value `fill`) when any amount is positive; returns the tensor to window over. */
function padded(tr: Translator, x: string, [t, b, l, r]: number[], fill = 0): string {
  if (t === 0 && b === 0 && l === 0 && r === 0) return x;
  const paddings = tr.ints('pad/paddings', [0, 0, t, b, l, r, 0, 0], [4, 2]);
  if (fill === 0) return tr.helper('pad', 'Pad', [x, paddings], { T: gattr.float32, Tpaddings: gattr.int32 });
  return tr.helper('pad', 'PadV2', [x, paddings, tr.scalar('pad/value', fill)], { T: gattr.float32, Tpaddings: gattr.int32 });
}

const convAttrs = (w: Window) => ({
  T: gattr.float32,
  strides: gattr.ints([1, w.strides[0], w.strides[1], 1]),
  padding: gattr.str('VALID'),
  data_format: gattr.str('NHWC'),
  dilations: gattr.ints([1, w.dilations[0], w.dilations[1], 1]),
});

/**
 * Conv (2-D), weights W [Cout, Cin/g, kh, kw] (OIHW), optional bias [Cout]:
 *  - group 1: Conv2D with filter transpose(W, [2, 3, 1, 0]) [kh, kw, Cin, Cout] (HWIO);
 *  - group = Cin (depthwise, Cout = Cin m): DepthwiseConv2dNative with filter
 *    transpose(reshape(W, [Cin, m, kh, kw]), [2, 3, 0, 1]) [kh, kw, Cin, m] (output channel c m + j
 *    reads input channel c, as in both frameworks);
 *  - 1 < group < Cin: Split into g channel groups, one Conv2D per group (filter rows of group i),
 *    ConcatV2.
 * Then BiasAdd, which carries the ONNX node's name (the convolution does when there is no bias).
 * tfjs needs strides or dilations to be 1.
 */
function emitConv(tr: Translator): void {
  const n = tr.node;
  const x = tr.need(0);
  const W = tr.constInput(1, 'weights')!;
  const B = tr.constInput(2, 'bias');
  if (W.rank !== 4 || x.shape.length !== 4) throw tr.error(`is a ${W.rank - 2}-D convolution; convlens supports 2-D convolutions of [N, C, H, W] images`);
  const [cout, cinG, kh, kw] = W.shape;
  const cin = x.shape[1];
  const g = attr.int(n, 'group', 1);
  const w = window(n, [kh, kw]);
  const [H, Wd] = [x.shape[2], x.shape[3]];
  const pads = explicitPads(n, [H, Wd], w);
  const xr = padded(tr, tr.nhwc(x), pads);
  const out = (a: 0 | 1, size: number) => Math.floor((size + pads[2 * a] + pads[2 * a + 1] - ((w.kernel[a] - 1) * w.dilations[a] + 1)) / w.strides[a]) + 1;
  const [oh, ow] = [out(0, H), out(1, Wd)];
  // the node before the BiasAdd is a helper; without a bias it carries the ONNX name
  const emit = (what: string, op: string, inputs: string[], a: Record<string, GraphAttr>) => (B ? tr.helper(what, op, inputs, a) : tr.main(op, inputs, a));
  let y: string;
  if (g === 1) {
    const filter = tr.constant('filter', tr.own(tf.transpose(W, [2, 3, 1, 0])));
    y = emit('conv', 'Conv2D', [xr, filter], convAttrs(w));
  } else if (g === cin && cinG === 1) {
    const m = cout / cin;
    const filter = tr.constant('filter', tr.own(tf.tidy(() => tf.transpose(tf.reshape(W, [cin, m, kh, kw]), [2, 3, 0, 1]))));
    y = emit('conv', 'DepthwiseConv2dNative', [xr, filter], convAttrs(w));
  } else {
    if (cin % g !== 0 || cout % g !== 0 || cinG !== cin / g) throw tr.error(`has group=${g} with ${cin} input and ${cout} output channels and weights [${W.shape.join(', ')}], which do not divide into groups`);
    const split = tr.helper('split', 'Split', [tr.ints('split/axis', [3], []), xr], { T: gattr.float32, num_split: gattr.int(g) });
    const per = cout / g;
    const parts: string[] = [];
    for (let i = 0; i < g; i++) {
      const filter = tr.constant(`filter_g${i}`, tr.own(tf.tidy(() => tf.transpose(tf.slice(W, [i * per, 0, 0, 0], [per, -1, -1, -1]), [2, 3, 1, 0]))));
      parts.push(tr.helper(`conv_g${i}`, 'Conv2D', [i === 0 ? split : `${split}:${i}`, filter], convAttrs(w)));
    }
    y = emit('concat', 'ConcatV2', [...parts, tr.ints('concat/axis', [3], [])], { T: gattr.float32, N: gattr.int(g), Tidx: gattr.int32 });
  }
  if (B) y = tr.main('BiasAdd', [y, tr.constant('bias', tf.reshape(B, [cout]))], { T: gattr.float32, data_format: gattr.str('NHWC') });
  tr.set(0, { shape: [x.shape[0], cout, oh, ow], ref: y, layout: 'nhwc', batched: x.batched });
}

/**
 * Output size of a pool over one axis as PyTorch and ONNX compute it:
 * floor or ceil((in + pb + pe - k) / s) + 1, and in ceil mode a last window that would start in
 * the end padding (or past it) is dropped: (out - 1) s >= in + pb.
 */
export function poolOutSize(size: number, k: number, s: number, pb: number, pe: number, ceil: boolean): number {
  const span = size + pb + pe - k;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= size + pb) out -= 1;
  return out;
}

/**
 * The shared part of MaxPool and AveragePool: explicit padding [t, b, l, r] where the bottom and
 * right grow (ceil mode) or shrink (floor mode's unused remainder) so that a VALID pool gives
 * exactly PyTorch's output size: end = max(0, (out - 1) s + k - in - begin).
 */
function poolGeometry(tr: Translator, x: Value) {
  const n = tr.node;
  const w = window(n);
  const [H, Wd] = [x.shape[2], x.shape[3]];
  const p = explicitPads(n, [H, Wd], w);
  const ceil = attr.int(n, 'ceil_mode', 0) === 1;
  const oh = poolOutSize(H, w.kernel[0], w.strides[0], p[0], p[1], ceil);
  const ow = poolOutSize(Wd, w.kernel[1], w.strides[1], p[2], p[3], ceil);
  const grown = [
    p[0], Math.max(0, (oh - 1) * w.strides[0] + w.kernel[0] - H - p[0]),
    p[2], Math.max(0, (ow - 1) * w.strides[1] + w.kernel[1] - Wd - p[2]),
  ];
  return { w, declared: p, grown, oh, ow, H, W: Wd };
}

const poolAttrs = (w: Window) => ({
  T: gattr.float32,
  ksize: gattr.ints([1, w.kernel[0], w.kernel[1], 1]),
  strides: gattr.ints([1, w.strides[0], w.strides[1], 1]),
  padding: gattr.str('VALID'),
  data_format: gattr.str('NHWC'),
});

const checkPool = (n: OnnxNode) => {
  const d = attr.ints(n, 'dilations') ?? [];
  if (d.some((v) => v !== 1)) return `dilations=[${d.join(', ')}] (tfjs pools have no dilation)`;
  if (n.output[1]) return 'an Indices output';
  return checkAutoPad(n) ?? only2d(n);
};

/** MaxPool: PadV2 with -FLT_MAX (padding never wins a window), then a VALID MaxPool. */
function emitMaxPool(tr: Translator): void {
  const x = tr.need(0);
  if (x.shape.length !== 4) throw tr.error(`pools a ${x.shape.length}-D tensor; convlens supports 2-D pooling of [N, C, H, W] images`);
  const g = poolGeometry(tr, x);
  const xr = padded(tr, tr.nhwc(x), g.grown, LOWEST_FLOAT);
  const y = tr.main('MaxPool', [xr], poolAttrs(g.w));
  tr.set(0, { shape: [x.shape[0], x.shape[1], g.oh, g.ow], ref: y, layout: 'nhwc', batched: x.batched });
}

/**
 * AveragePool: zero padding, a VALID AvgPool (sum / (kh kw) over the padded window), then, where
 * PyTorch divides by something else, a Mul by the constant [1, oh, ow, 1] of kh kw / divisor.
 * The divisor (PyTorch's avg_pool2d, per axis, multiplied): with the window [o s - pb, + k) cut
 * at in + pe, count_include_pad=1 counts the cells up to there (declared padding counts, the
 * ceil-mode extension does not); count_include_pad=0 counts the input cells only.
 */
function emitAvgPool(tr: Translator): void {
  const x = tr.need(0);
  if (x.shape.length !== 4) throw tr.error(`pools a ${x.shape.length}-D tensor; convlens supports 2-D pooling of [N, C, H, W] images`);
  const g = poolGeometry(tr, x);
  const includePad = attr.int(tr.node, 'count_include_pad', 0) === 1;
  const divisors = (a: 0 | 1, size: number, outSize: number) => Array.from({ length: outSize }, (_, o) => {
    const start = o * g.w.strides[a] - g.declared[2 * a];
    const end = Math.min(start + g.w.kernel[a], size + g.declared[2 * a + 1]);
    return includePad ? end - start : Math.min(end, size) - Math.max(start, 0);
  });
  const dh = divisors(0, g.H, g.oh);
  const dw = divisors(1, g.W, g.ow);
  const k = g.w.kernel[0] * g.w.kernel[1];
  const exact = dh.every((a) => dw.every((b) => a * b === k));
  const xr = padded(tr, tr.nhwc(x), g.grown, 0);
  let y: string;
  if (exact) {
    y = tr.main('AvgPool', [xr], poolAttrs(g.w));
  } else {
    const pool = tr.helper('pool', 'AvgPool', [xr], poolAttrs(g.w));
    const factor = new Float32Array(g.oh * g.ow);
    dh.forEach((a, i) => dw.forEach((b, j) => { factor[i * g.ow + j] = k / (a * b); }));
    y = tr.main('Mul', [pool, tr.constant('divisor', tf.tensor4d(factor, [1, g.oh, g.ow, 1]), true)], { T: gattr.float32 });
  }
  tr.set(0, { shape: [x.shape[0], x.shape[1], g.oh, g.ow], ref: y, layout: 'nhwc', batched: x.batched });
}

/** GlobalAveragePool / GlobalMaxPool: Mean / Max over H and W with keep_dims ([N, 1, 1, C]). */
function emitGlobal(op: 'Mean' | 'Max') {
  return (tr: Translator) => {
    const x = tr.need(0);
    if (x.shape.length !== 4) throw tr.error(`pools a ${x.shape.length}-D tensor; convlens supports [N, C, H, W] images`);
    const y = tr.main(op, [tr.nhwc(x), tr.ints('axes', [1, 2])], { T: gattr.float32, Tidx: gattr.int32, keep_dims: gattr.bool(true) });
    tr.set(0, { shape: [x.shape[0], x.shape[1], 1, 1], ref: y, layout: 'nhwc', batched: x.batched });
  };
}

/**
 * BatchNormalization (inference): ConvlensBatchNorm(x, scale, B, mean, var) with `epsilon`,
 * y = (x - mean) / sqrt(var + eps) * scale + B per channel. The per-channel vectors [C] meet the
 * last axis of an NHWC or [N, C] tensor; for [N, C, L] they become [C, 1].
 */
function emitBatchNorm(tr: Translator): void {
  const x = tr.need(0);
  const params = [1, 2, 3, 4].map((i) => tr.constInput(i, 'statistics')!);
  const C = x.shape[1];
  const rank = x.shape.length;
  const xr = rank === 4 ? tr.nhwc(x) : tr.plain(x);
  const shape = rank === 4 || rank === 2 ? [C] : [C, ...Array(rank - 2).fill(1)];
  const names = ['scale', 'offset', 'mean', 'variance'];
  const inputs = params.map((p, i) => tr.constant(names[i], tf.reshape(p, shape)));
  const y = tr.main(BATCH_NORM_OP, [xr, ...inputs], { epsilon: gattr.float(attr.float(tr.node, 'epsilon', 1e-5)) });
  tr.set(0, { shape: [...x.shape], ref: y, layout: rank === 4 ? 'nhwc' : 'plain', batched: x.batched });
}

export const CONV_OPS: OpTable = {
  Conv: {
    check: (n) => {
      const d = attr.ints(n, 'dilations') ?? [1, 1];
      const s = attr.ints(n, 'strides') ?? [1, 1];
      if (d.some((v) => v !== 1) && s.some((v) => v !== 1)) return `strides=[${s.join(', ')}] with dilations=[${d.join(', ')}] (tfjs needs one of them to be 1)`;
      return checkAutoPad(n) ?? only2d(n);
    },
    emit: emitConv,
  },
  MaxPool: { check: checkPool, emit: emitMaxPool },
  AveragePool: { check: checkPool, emit: emitAvgPool },
  GlobalAveragePool: { emit: emitGlobal('Mean') },
  GlobalMaxPool: { emit: emitGlobal('Max') },
  BatchNormalization: {
    check: (n) => {
      if (attr.int(n, 'training_mode', 0) === 1) return 'training_mode=1 (export the model in eval mode)';
      if (attr.int(n, 'spatial', 1) === 0) return 'spatial=0';
      if (n.output.slice(1).some(Boolean)) return 'running-statistics outputs (export the model in eval mode)';
      return undefined;
    },
    emit: emitBatchNorm,
  },
};
