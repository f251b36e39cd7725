import * as tf from '@tensorflow/tfjs';
import { HARD_SWISH_OP } from '../graph-rewrite.ts';
import type { OnnxNode } from './decode.ts';
import type { OpTable } from './op-def.ts';
import { NHWC_AXIS, attr, broadcastShapes, constNhwc, dynamic, gattr, normAxis, type Translator, type Value } from './translator.ts';

/**
 * Elementwise operators, activations, matrix products and softmax. Elementwise ops keep their
 * input's layout; a constant operand of an NHWC tensor is broadcast to rank 4 and permuted once
 * (a [C, 1, 1] or [1, C, 1, 1] constant becomes [1, 1, 1, C]).
 */

/** Op of ONNX HardSigmoid: y = max(0, min(1, alpha x + beta)) (attrs alpha, beta). */
export const HARD_SIGMOID_OP = 'ConvlensHardSigmoid';
tf.registerOp(HARD_SIGMOID_OP, (node) => {
  const x = node.inputs[0];
  const alpha = typeof node.attrs.alpha === 'number' ? node.attrs.alpha : 0.2;
  const beta = typeof node.attrs.beta === 'number' ? node.attrs.beta : 0.5;
  return tf.tidy(() => tf.clipByValue(tf.add(tf.mul(x, alpha), beta), 0, 1));
});

/**
 * Op of ONNX Gelu (opset 20; attr approximate 'none' or 'tanh'):
 *   none: y = x/2 (1 + erf(x / sqrt 2))
 *   tanh: y = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 */
export const GELU_OP = 'ConvlensGelu';
tf.registerOp(GELU_OP, (node) => {
  const x = node.inputs[0];
  const approximate = node.attrs.approximate === 'tanh';
  return tf.tidy(() => {
    const inner = approximate
      ? tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))
      : tf.erf(tf.mul(x, Math.SQRT1_2));
    return tf.mul(tf.mul(x, 0.5), tf.add(inner, 1));
  });
});

/**
 * Op of ONNX LayerNormalization over the last axis: y = (x - mean) / sqrt(var + epsilon) * scale + bias,
 * mean and (biased) variance over that axis; inputs [x, scale, bias] ([C] each), attr epsilon.
 */
export const LAYER_NORM_OP = 'ConvlensLayerNorm';
tf.registerOp(LAYER_NORM_OP, (node) => {
  const [x, scale, bias] = node.inputs;
  const eps = typeof node.attrs.epsilon === 'number' ? node.attrs.epsilon : 1e-5;
  return tf.tidy(() => {
    const d = tf.sub(x, tf.mean(x, -1, true));
    const v = tf.mean(tf.square(d), -1, true);
    return tf.add(tf.mul(tf.mul(d, tf.rsqrt(tf.add(v, eps))), scale), bias);
  });
});

/** LayerNormalization over the graph tensor's last axis (the channels of NHWC, or the last ONNX axis). */
function emitLayerNorm(tr: Translator): void {
  const x = tr.need(0);
  if (!dynamic(x)) throw tr.error('has a constant input');
  const rank = x.shape.length;
  const a = normAxis(attr.int(tr.node, 'axis', -1), rank);
  const graphAxis = x.layout === 'nhwc' ? NHWC_AXIS[a] : a;
  if (a !== rank - 1 && !(x.layout === 'nhwc' && a === 1)) {
    throw tr.error(`normalizes over axes ${a}..${rank - 1} of a [${x.shape.join(', ')}] tensor; convlens supports LayerNormalization over the last (channel) axis only`);
  }
  if (graphAxis !== rank - 1) throw tr.error('normalizes over an axis that is not the last');
  const C = x.shape[a];
  const scale = tr.constInput(1, 'scale')!;
  const bias = tr.constInput(2, 'bias');
  const y = tr.main(LAYER_NORM_OP, [x.ref, tr.constant('scale', tf.reshape(scale, [C])), tr.constant('bias', bias ? tf.reshape(bias, [C]) : tf.zeros([C]))], {
    epsilon: gattr.float(attr.float(tr.node, 'epsilon', 1e-5)),
  });
  tr.set(0, { ...x, ref: y });
}

/** ONNX op -> TensorFlow op of the same elementwise function. */
const UNARY: Record<string, string> = {
  Relu: 'Relu', Sigmoid: 'Sigmoid', Tanh: 'Tanh', Erf: 'Erf', Sqrt: 'Sqrt', Exp: 'Exp', Log: 'Log',
  Neg: 'Neg', Abs: 'Abs', Reciprocal: 'Reciprocal', Softplus: 'Softplus', Floor: 'Floor', Ceil: 'Ceil',
  Sign: 'Sign', HardSwish: HARD_SWISH_OP, Elu: 'Elu', Selu: 'Selu',
};

const UNARY_FOLD: Record<string, (x: tf.Tensor) => tf.Tensor> = {
  Relu: tf.relu, Sigmoid: tf.sigmoid, Tanh: tf.tanh, Erf: tf.erf, Sqrt: tf.sqrt, Exp: tf.exp, Log: tf.log,
  Neg: tf.neg, Abs: tf.abs, Reciprocal: tf.reciprocal, Softplus: tf.softplus, Floor: tf.floor, Ceil: tf.ceil, Sign: tf.sign,
};

/** Emits `op` on the input, keeping its layout, with `attrs`. */
function unary(op: string, attrs: (n: OnnxNode) => Record<string, unknown> = () => ({})) {
  return (tr: Translator) => {
    const x = tr.need(0);
    if (!dynamic(x)) throw tr.error('has a constant input convlens cannot compute at translation time');
    const y = tr.main(op, [x.ref], { T: gattr.float32, ...attrs(tr.node) } as never);
    tr.set(0, { ...x, const: undefined, ref: y });
  };
}

/** The layout a binary elementwise op runs in: NHWC when a 4-D operand is NHWC and the other fits. */
function binaryLayout(a: Value, b: Value, shape: number[]): 'nhwc' | 'plain' {
  const ops = [a, b];
  if (shape.length !== 4 || !ops.some((v) => dynamic(v) && v.layout === 'nhwc')) return 'plain';
  return ops.every((v) => (dynamic(v) ? v.shape.length === 4 : v.shape.length <= 4)) ? 'nhwc' : 'plain';
}

/** A constant operand as float32 when it meets a float tensor (ONNX exports sometimes keep ints). */
const asFloat = (v: Value): Value => (v.const && v.const.dtype !== 'float32' ? { ...v, const: tf.cast(v.const, 'float32') } : v);

function binary(op: string) {
  return (tr: Translator) => {
    const a = asFloat(tr.need(0));
    const b = asFloat(tr.need(1));
    [a, b].forEach((v) => { if (v.const) tr.own(v.const); });
    const shape = broadcastShapes(a.shape, b.shape);
    const layout = binaryLayout(a, b, shape);
    const y = tr.main(op, [tr.as(a, layout, 'a'), tr.as(b, layout, 'b')], { T: gattr.float32 });
    tr.set(0, { shape, ref: y, layout, batched: [a, b].some((v) => dynamic(v) && v.batched) });
  };
}

/** ONNX Div on integers truncates; tfjs's div of int32 floors: the same for the non-negative sizes shapes hold. */
const BINARY_FOLD: Record<string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor> = {
  Add: tf.add, Sub: tf.sub, Mul: tf.mul,
  Div: (a, b) => (a.dtype === 'int32' && b.dtype === 'int32' ? tf.floorDiv(a, b) : tf.div(a, b)),
  Pow: (a, b) => tf.pow(a, b),
  Equal: tf.equal, Less: tf.less, Greater: tf.greater, LessOrEqual: tf.lessEqual, GreaterOrEqual: tf.greaterEqual,
  And: tf.logicalAnd, Or: tf.logicalOr, Mod: tf.mod,
};

/** The two operands in one dtype (float32 unless both are ints). */
function sameType(a: tf.Tensor, b: tf.Tensor): [tf.Tensor, tf.Tensor] {
  if (a.dtype === b.dtype) return [a, b];
  return [tf.cast(a, 'float32'), tf.cast(b, 'float32')];
}

/** Pow with a constant exponent 2 or 0.5 is Square / Sqrt (their gradients are simpler); otherwise Pow. */
function emitPow(tr: Translator): void {
  const e = tr.input(1)?.const;
  const single = e && e.size === 1 ? e.dataSync()[0] : undefined;
  const x = tr.need(0);
  if (dynamic(x) && (single === 2 || single === 0.5) && broadcastShapes(x.shape, e!.shape).length === x.shape.length) {
    unary(single === 2 ? 'Square' : 'Sqrt')(tr);
    return;
  }
  binary('Pow')(tr);
}

/** PRelu: Prelu(x, slope) with the slope ([C, 1, 1] in ONNX) in the input's layout ([1, 1, 1, C] for NHWC). */
function emitPRelu(tr: Translator): void {
  const x = tr.need(0);
  const slope = tr.constInput(1, 'slope')!;
  if (!dynamic(x)) throw tr.error('has a constant input');
  const alpha = x.layout === 'nhwc' ? constNhwc(slope) : tf.cast(slope, 'float32');
  const y = tr.main('Prelu', [x.ref, tr.constant('slope', tr.own(alpha))], { T: gattr.float32 });
  tr.set(0, { ...x, ref: y });
}

/**
 * Clip: bounds from attributes min / max (opset < 11) or optional constant inputs 1 and 2
 * (opset >= 11); a missing bound is none. [0, 6] is Relu6, [0, none] Relu, anything else
 * ClipByValue with +-FLT_MAX standing in for a missing bound.
 */
function emitClip(tr: Translator): void {
  const x = tr.need(0);
  if (!dynamic(x)) throw tr.error('has a constant input');
  const n = tr.node;
  const bound = (i: number, name: string) => {
    if (tr.opset < 11) return n.attrs.get(name)?.f;
    const t = tr.constInput(i, `${name} bound`);
    return t ? t.dataSync()[0] : undefined;
  };
  const lo = bound(1, 'min');
  const hi = bound(2, 'max');
  let y: string;
  if (lo === 0 && hi === 6) y = tr.main('Relu6', [x.ref], { T: gattr.float32 });
  else if (lo === 0 && hi === undefined) y = tr.main('Relu', [x.ref], { T: gattr.float32 });
  else y = tr.main('ClipByValue', [x.ref, tr.scalar('min', lo ?? -3.4028234663852886e38), tr.scalar('max', hi ?? 3.4028234663852886e38)], { T: gattr.float32 });
  tr.set(0, { ...x, ref: y });
}

/**
 * Softmax / LogSoftmax over one axis. TensorFlow's ops take the last axis, so the axis must be
 * the graph tensor's last: the class axis of [N, C] scores, or C of an NHWC tensor. Opset < 13
 * (default axis 1) flattens the axes from `axis` on; that is the same when they are the last.
 */
function softmax(op: 'Softmax' | 'LogSoftmax') {
  return (tr: Translator) => {
    const x = tr.need(0);
    if (!dynamic(x)) throw tr.error('has a constant input');
    const rank = x.shape.length;
    const a = normAxis(attr.int(tr.node, 'axis', tr.opset < 13 ? 1 : -1), rank);
    const graphAxis = x.layout === 'nhwc' ? NHWC_AXIS[a] : a;
    const trailing = x.shape.slice(a + 1).every((d) => d === 1) && (x.layout === 'plain' || a === 1);
    if (graphAxis !== rank - 1 && !(tr.opset < 13 && trailing && a === rank - 1)) {
      throw tr.error(`takes the ${op} over axis ${a} of a [${x.shape.join(', ')}] tensor; convlens supports it over the last (class or channel) axis only`);
    }
    const y = tr.main(op, [x.ref], { T: gattr.float32 });
    tr.set(0, { ...x, ref: y });
  };
}

/**
 * Gemm: Y = alpha A' B' + beta C (A' = A^T if transA, B' = B^T if transB). A constant B becomes
 * the MatMul weight alpha B' [K, N] (so CAM reads a [features, classes] kernel); a constant
 * C of N values becomes the BiasAdd beta C [N], which carries the ONNX node's name.
 */
function emitGemm(tr: Translator): void {
  const n = tr.node;
  const a = tr.need(0);
  const b = tr.need(1);
  const c = tr.input(2);
  const alpha = attr.float(n, 'alpha', 1);
  const beta = attr.float(n, 'beta', 1);
  const transA = attr.int(n, 'transA', 0) === 1;
  const transB = attr.int(n, 'transB', 0) === 1;
  if (!dynamic(a)) throw tr.error('multiplies a constant A; convlens needs A to come from the input');
  const M = transA ? a.shape[1] : a.shape[0];
  const N = transB ? b.shape[0] : b.shape[1];
  const hasBias = c !== undefined && beta !== 0;
  const mm = (op: string, inputs: string[], attrs: Record<string, unknown>) => (hasBias ? tr.helper('matmul', op, inputs, attrs as never) : tr.main(op, inputs, attrs as never));
  let y: string;
  if (b.const) {
    const w = tr.own(tf.tidy(() => tf.mul(transB ? tf.transpose(b.const!) : b.const!, alpha)));
    y = mm('MatMul', [a.ref, tr.constant('weight', w)], { T: gattr.float32, transpose_a: gattr.bool(transA), transpose_b: gattr.bool(false) });
  } else {
    const attrs = { T: gattr.float32, transpose_a: gattr.bool(transA), transpose_b: gattr.bool(transB) };
    y = alpha === 1 ? mm('MatMul', [a.ref, tr.plain(b, 'b')], attrs) : tr.helper('matmul', 'MatMul', [a.ref, tr.plain(b, 'b')], attrs);
    if (alpha !== 1) y = hasBias ? tr.helper('alpha', 'Mul', [y, tr.scalar('alpha', alpha)], { T: gattr.float32 }) : tr.main('Mul', [y, tr.scalar('alpha', alpha)], { T: gattr.float32 });
  }
  if (hasBias) {
    if (c.const && c.const.size === N && (c.shape.length === 1 || c.shape[c.shape.length - 1] === N)) {
      y = tr.main('BiasAdd', [y, tr.constant('bias', tr.own(tf.tidy(() => tf.mul(tf.reshape(tf.cast(c.const!, 'float32'), [N]), beta))))], { T: gattr.float32, data_format: gattr.str('NHWC') });
    } else {
      const cv = c.const ? { ...c, const: tr.own(tf.mul(tf.cast(c.const, 'float32'), beta)) } : c;
      const cref = tr.plain(cv, 'c');
      const scaled = beta === 1 || c.const ? cref : tr.helper('beta', 'Mul', [cref, tr.scalar('beta', beta)], { T: gattr.float32 });
      y = tr.main('AddV2', [y, scaled], { T: gattr.float32 });
    }
  }
  tr.set(0, { shape: [M, N], ref: y, layout: 'plain', batched: a.batched && !transA });
}

/**
 * MatMul: [.., M, K] x [K, N] with a constant 2-D B is a MatMul of the rows
 * (a Reshape to [-1, K] and back for rank > 2); two computed operands are a BatchMatMulV2.
 */
function emitMatMul(tr: Translator): void {
  const a = tr.need(0);
  const b = tr.need(1);
  if (!dynamic(a)) throw tr.error('multiplies a constant A; convlens needs A to come from the input');
  const K = a.shape[a.shape.length - 1];
  if (b.const && b.shape.length === 2) {
    const N = b.shape[1];
    const w = tr.constant('weight', tf.cast(b.const, 'float32'));
    const shape = [...a.shape.slice(0, -1), N];
    const ar = tr.plain(a);
    let y: string;
    if (a.shape.length === 2) {
      y = tr.main('MatMul', [ar, w], { T: gattr.float32, transpose_a: gattr.bool(false), transpose_b: gattr.bool(false) });
    } else {
      const rows = tr.helper('rows', 'Reshape', [ar, tr.ints('rows/shape', [-1, K])], { T: gattr.float32, Tshape: gattr.int32 });
      const mm = tr.helper('matmul', 'MatMul', [rows, w], { T: gattr.float32, transpose_a: gattr.bool(false), transpose_b: gattr.bool(false) });
      const target = a.batched ? [-1, ...shape.slice(1)] : shape;
      y = tr.main('Reshape', [mm, tr.ints('shape', target)], { T: gattr.float32, Tshape: gattr.int32 });
    }
    tr.set(0, { shape, ref: y, layout: 'plain', batched: a.batched });
    return;
  }
  if (a.shape.length !== b.shape.length) throw tr.error(`multiplies tensors of ranks ${a.shape.length} and ${b.shape.length}; convlens needs equal ranks or a constant 2-D B`);
  const shape = [...broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2)), a.shape[a.shape.length - 2], b.shape[b.shape.length - 1]];
  const y = tr.main('BatchMatMulV2', [tr.plain(a), tr.plain(b, 'b')], { T: gattr.float32, adj_x: gattr.bool(false), adj_y: gattr.bool(false) });
  tr.set(0, { shape, ref: y, layout: 'plain', batched: a.batched });
}

const seluDefaults = (n: OnnxNode) => Math.abs(attr.float(n, 'alpha', 1.67326319217681884765625) - 1.67326319217681884765625) < 1e-6
  && Math.abs(attr.float(n, 'gamma', 1.05070102214813232421875) - 1.05070102214813232421875) < 1e-6;

export const MATH_OPS: OpTable = {
  ...Object.fromEntries(Object.entries(UNARY).map(([onnxOp, tfOp]) => [onnxOp, {
    fold: UNARY_FOLD[onnxOp] ? (ins: (tf.Tensor | undefined)[]) => [UNARY_FOLD[onnxOp](ins[0]!)] : undefined,
    emit: unary(tfOp),
  }])),
  Elu: {
    check: (n) => (attr.float(n, 'alpha', 1) !== 1 ? `alpha=${attr.float(n, 'alpha', 1)} (tfjs's Elu has alpha 1)` : undefined),
    emit: unary('Elu'),
  },
  Selu: { check: (n) => (seluDefaults(n) ? undefined : 'alpha / gamma other than the standard SELU constants'), emit: unary('Selu') },
  LeakyRelu: { emit: unary('LeakyRelu', (n) => ({ alpha: gattr.float(attr.float(n, 'alpha', 0.01)) })) },
  HardSigmoid: {
    emit: unary(HARD_SIGMOID_OP, (n) => ({ alpha: gattr.float(attr.float(n, 'alpha', 0.2)), beta: gattr.float(attr.float(n, 'beta', 0.5)) })),
  },
  Gelu: {
    check: (n) => (['none', 'tanh'].includes(attr.str(n, 'approximate', 'none')) ? undefined : `approximate=${attr.str(n, 'approximate', 'none')}`),
    emit: unary(GELU_OP, (n) => ({ approximate: gattr.str(attr.str(n, 'approximate', 'none')) })),
  },
  PRelu: { emit: emitPRelu },
  Clip: {
    fold: (ins, n, opset) => {
      const lo = opset < 11 ? n.attrs.get('min')?.f : ins[1]?.dataSync()[0];
      const hi = opset < 11 ? n.attrs.get('max')?.f : ins[2]?.dataSync()[0];
      return [tf.clipByValue(ins[0]!, lo ?? -Infinity, hi ?? Infinity)];
    },
    emit: emitClip,
  },
  ...Object.fromEntries(['Add', 'Sub', 'Mul', 'Div'].map((op) => [op, {
    fold: (ins: (tf.Tensor | undefined)[]) => [BINARY_FOLD[op](...sameType(ins[0]!, ins[1]!))],
    emit: binary({ Add: 'AddV2', Sub: 'Sub', Mul: 'Mul', Div: 'RealDiv' }[op]!),
  }])),
  Pow: { fold: (ins) => [tf.pow(...sameType(ins[0]!, ins[1]!))], emit: emitPow },
  ...Object.fromEntries(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Mod'].map((op) => [op, {
    fold: (ins: (tf.Tensor | undefined)[]) => [BINARY_FOLD[op](...sameType(ins[0]!, ins[1]!))],
    emit: (tr: Translator) => { throw tr.error('compares values computed from the input; convlens supports it on constants only'); },
  }])),
  Not: { fold: (ins) => [tf.logicalNot(tf.cast(ins[0]!, 'bool'))], emit: (tr) => { throw tr.error('is computed from the input; convlens supports it on constants only'); } },
  Where: {
    fold: (ins) => {
      const [a, b] = sameType(ins[1]!, ins[2]!);
      const shape = broadcastShapes(broadcastShapes(ins[0]!.shape, a.shape), b.shape);
      // selected in JS: wasm's Select gives wrong values for scalars
      const [c, x, y] = [tf.broadcastTo(ins[0]!, shape), tf.broadcastTo(a, shape), tf.broadcastTo(b, shape)].map((t) => t.dataSync());
      return [tf.tensor(Array.from(c, (v, i) => (v ? x[i] : y[i])), shape, a.dtype)];
    },
    emit: (tr) => { throw tr.error('selects between values computed from the input; convlens supports it on constants only'); },
  },
  Max: { fold: (ins) => [ins.slice(1).reduce((m: tf.Tensor, t) => tf.maximum(...sameType(m, t!)), ins[0]!)], emit: (tr) => { throw tr.error('is computed from the input; convlens supports it on constants only'); } },
  Min: { fold: (ins) => [ins.slice(1).reduce((m: tf.Tensor, t) => tf.minimum(...sameType(m, t!)), ins[0]!)], emit: (tr) => { throw tr.error('is computed from the input; convlens supports it on constants only'); } },
  Softmax: { emit: softmax('Softmax') },
  LogSoftmax: { emit: softmax('LogSoftmax') },
  LayerNormalization: {
    check: (n) => (n.output.slice(1).some(Boolean) ? 'Mean / InvStdDev outputs' : undefined),
    emit: emitLayerNorm,
  },
  Gemm: { emit: emitGemm },
  MatMul: { emit: emitMatMul },
};
