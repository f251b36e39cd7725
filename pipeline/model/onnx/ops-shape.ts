import * as tf from '@tensorflow/tfjs';
import type { OnnxNode, OnnxTensor } from './decode.ts';
import type { OpTable } from './op-def.ts';
import { NHWC_AXIS, TO_NHWC, attr, broadcastShapes, dynamic, gattr, nhwcShape, normAxis, sizeOf, type Layout, type Translator, type Value } from './translator.ts';

/**
 * Shape-changing operators, slicing and joining, padding, reductions, and the constant
 * operators that shape arithmetic folds away (Shape, Constant, ConstantOfShape, Cast, Range ...).
 * Axis arguments of NHWC values are remapped (ONNX axis a is graph axis NHWC_AXIS[a]); ops whose
 * result order differs between the layouts (Flatten, Reshape of an NHWC tensor with C > 1 and
 * H W > 1) transpose back to NCHW first, so the numbers come out in PyTorch's order.
 */

export function tensorOf(t: OnnxTensor): tf.Tensor {
  return tf.tensor(t.data, t.dims, t.dtype);
}

/** Gather indices with negative values counted from the end of an axis of size `dim` (in JS: wasm's Select of scalars is unreliable). */
function normIndices(t: tf.Tensor, dim: number): tf.Tensor {
  return tf.tensor(Array.from(t.dataSync(), (v) => (v < 0 ? v + dim : v)), t.shape, 'int32');
}

const ints = (t: tf.Tensor | undefined): number[] | undefined => (t ? Array.from(t.dataSync(), Number) : undefined);

/**
 * A list argument that moved from an attribute to input `index` at opset `since` (Squeeze /
 * Unsqueeze / Split / ReduceSum axes at 13, ReduceMean and the other reductions at 18, Slice at 10).
 */
function listArg(tr: Translator, name: string, index: number, since: number): number[] | undefined {
  if (tr.opset < since) return attr.ints(tr.node, name);
  return tr.constInts(index, name);
}

/** The same for folding (the inputs are tensors). */
function listArgFold(ins: (tf.Tensor | undefined)[], n: OnnxNode, opset: number, name: string, index: number, since: number): number[] | undefined {
  return opset < since ? attr.ints(n, name) : ints(ins[index]);
}

/** Graph tensor with ONNX element order: NHWC values are transposed back unless C = 1 or H W = 1 (then the orders agree). */
function rowMajor(tr: Translator, x: Value & { ref: string }): string {
  if (x.layout === 'plain') return x.ref;
  const [, c, h, w] = x.shape;
  return c === 1 || h * w === 1 ? x.ref : tr.plain(x);
}

/**
 * Reshape of x to the ONNX shape `out`. A 4-D result with C = 1 or H W = 1 is made NHWC directly
 * (same element order). When x's first dim is the batch and `out` keeps it (same first dim, same
 * per-example size), the target's first dim is -1 so any batch size works (`x.view(x.size(0), -1)`).
 */
function emitReshapeTo(tr: Translator, x: Value, out: number[]): void {
  if (!dynamic(x)) throw tr.error('reshapes a constant it could not compute');
  const src = rowMajor(tr, x);
  const batched = x.batched && out.length > 0 && out[0] === x.shape[0] && sizeOf(out.slice(1)) === sizeOf(x.shape.slice(1));
  const nhwc = out.length === 4 && (out[1] === 1 || out[2] * out[3] === 1);
  const target = nhwc ? nhwcShape(out) : [...out];
  if (batched) target[0] = -1;
  const y = tr.main('Reshape', [src, tr.ints('shape', target)], { T: gattr.float32, Tshape: gattr.int32 });
  tr.set(0, { shape: out, ref: y, layout: nhwc ? 'nhwc' : 'plain', batched });
}

/** ONNX Reshape's target: 0 copies the input dim (unless allowzero), one -1 takes the rest. */
function reshapeTarget(inShape: readonly number[], target: readonly number[], allowzero: boolean): number[] {
  const out = target.map((d, i) => (d === 0 && !allowzero ? inShape[i] : d));
  const k = out.indexOf(-1);
  if (k >= 0) out[k] = sizeOf(inShape) / sizeOf(out.filter((_, i) => i !== k));
  return out;
}

const flattenShape = (shape: readonly number[], axis: number) => {
  const a = normAxis(axis, shape.length);
  return [sizeOf(shape.slice(0, a)), sizeOf(shape.slice(a))];
};

/** Squeeze's axes (all size-1 axes when none are given, the batch axis excepted when it is one). */
function squeezeAxes(shape: readonly number[], axes: number[] | undefined, batched: boolean): number[] {
  if (axes && axes.length) return axes.map((a) => normAxis(a, shape.length));
  return shape.map((d, i) => (d === 1 && !(batched && i === 0) ? i : -1)).filter((i) => i >= 0);
}

function unsqueezeShape(shape: readonly number[], axes: number[]): number[] {
  const rank = shape.length + axes.length;
  const at = new Set(axes.map((a) => normAxis(a, rank)));
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(at.has(i) ? 1 : shape[k++]);
  return out;
}

/**
 * Whether dropping ONNX axes `gone` from an NHWC value leaves the graph tensor in ONNX order
 * (e.g. [N, C, 1, 1] without H and W is [N, C] either way); then the op can run on the NHWC
 * tensor with remapped axes and give a 'plain' result.
 */
function dropKeepsOrder(gone: readonly number[]): boolean {
  const onnxOrder = [0, 1, 2, 3].filter((a) => !gone.includes(a));
  const graphOrder = TO_NHWC.filter((a) => !gone.includes(a));
  return onnxOrder.every((a, i) => graphOrder[i] === a);
}

/**
 * Slice: per sliced axis [start, end) with step, clamped as ONNX does (negative values count from
 * the end; a positive step clamps to [0, dim], a negative one to [-1, dim - 1]).
 */
function sliceRanges(shape: readonly number[], starts: number[], ends: number[], axes?: number[], steps?: number[]) {
  const r = shape.map((d) => ({ begin: 0, end: d, step: 1, touched: false }));
  starts.forEach((s0, i) => {
    const a = normAxis(axes?.[i] ?? i, shape.length);
    const step = steps?.[i] ?? 1;
    const dim = shape[a];
    const clamp = (v: number) => {
      const x = v < 0 ? v + dim : v;
      return step > 0 ? Math.min(Math.max(x, 0), dim) : Math.min(Math.max(x, -1), dim - 1);
    };
    r[a] = { begin: clamp(s0), end: clamp(ends[i]), step, touched: true };
  });
  return r.map((x) => ({ ...x, size: Math.max(0, Math.ceil((x.end - x.begin) / x.step)) }));
}

function sliceArgs(ins: (tf.Tensor | undefined)[], n: OnnxNode, opset: number) {
  if (opset < 10) return { starts: attr.ints(n, 'starts') ?? [], ends: attr.ints(n, 'ends') ?? [], axes: attr.ints(n, 'axes'), steps: undefined };
  return { starts: ints(ins[1]) ?? [], ends: ints(ins[2]) ?? [], axes: ints(ins[3]), steps: ints(ins[4]) };
}

function foldSlice(x: tf.Tensor, r: ReturnType<typeof sliceRanges>): tf.Tensor {
  if (r.some((a) => a.size === 0)) return tf.zeros(r.map((a) => a.size), x.dtype);
  // a reversed slice that runs past index 0 ends at -1, which stridedSlice reads as "last": the end mask says "to the end" instead
  const endMask = r.reduce((m, a, i) => (a.step < 0 && a.end < 0 ? m | (1 << i) : m), 0);
  return tf.stridedSlice(x, r.map((a) => a.begin), r.map((a) => a.end), r.map((a) => a.step), 0, endMask);
}

/**
 * Slice of a computed tensor: a Slice node (begin, size) when every step is 1, else a StridedSlice
 * (positive steps only: convlens has no gradient for reversed slices). An untouched batch axis
 * keeps size -1 / the end mask, so any batch size works.
 */
function emitSlice(tr: Translator): void {
  const x = tr.need(0);
  if (!dynamic(x)) throw tr.error('slices a constant it could not compute');
  const ins = [0, 1, 2, 3, 4].map((i) => (i === 0 ? undefined : tr.input(i)?.const));
  if (tr.opset >= 10) for (const i of [1, 2, 3, 4]) if (tr.input(i) && !ins[i]) throw tr.error('computes its slice bounds from the input; convlens needs them to be constants');
  const { starts, ends, axes, steps } = sliceArgs(ins, tr.node, tr.opset);
  const r = sliceRanges(x.shape, starts, ends, axes, steps);
  if (r.some((a) => a.step < 0)) throw tr.error('slices with a negative step (a reversal), which convlens cannot differentiate');
  const perm = x.layout === 'nhwc' ? TO_NHWC : r.map((_, i) => i);
  const g = perm.map((a) => r[a]);
  const keepBatch = x.batched && !r[0].touched;
  let y: string;
  if (g.every((a) => a.step === 1)) {
    const size = g.map((a, i) => (i === 0 && keepBatch ? -1 : a.size));
    y = tr.main('Slice', [x.ref, tr.ints('begin', g.map((a) => a.begin)), tr.ints('size', size)], { T: gattr.float32, Index: gattr.int32 });
  } else {
    y = tr.main('StridedSlice', [x.ref, tr.ints('begin', g.map((a) => a.begin)), tr.ints('end', g.map((a) => a.end)), tr.ints('strides', g.map((a) => a.step))], {
      T: gattr.float32, Index: gattr.int32, begin_mask: gattr.int(0), end_mask: gattr.int(keepBatch ? 1 : 0),
      ellipsis_mask: gattr.int(0), new_axis_mask: gattr.int(0), shrink_axis_mask: gattr.int(0),
    });
  }
  tr.set(0, { shape: r.map((a) => a.size), ref: y, layout: x.layout, batched: keepBatch });
}

/** Concat: NHWC when the result is 4-D and an input is NHWC (the axis remapped), else in ONNX layout. */
function emitConcat(tr: Translator): void {
  const vals = tr.node.input.map((_, i) => tr.need(i)).map((v) => (v.const && v.const.dtype !== 'float32' ? { ...v, const: tr.own(tf.cast(v.const, 'float32')) } : v));
  const rank = vals[0].shape.length;
  const a = normAxis(attr.int(tr.node, 'axis', 0), rank);
  const layout: Layout = rank === 4 && vals.some((v) => dynamic(v) && v.layout === 'nhwc') ? 'nhwc' : 'plain';
  const shape = [...vals[0].shape];
  shape[a] = vals.reduce((s, v) => s + v.shape[a], 0);
  const batched = a !== 0 && vals.some((v) => dynamic(v) && v.batched);
  if (vals.length === 1) {
    tr.alias(0, vals[0]);
    return;
  }
  const refs = vals.map((v, i) => tr.as(v, layout, `input${i}`));
  const y = tr.main('ConcatV2', [...refs, tr.ints('axis', [layout === 'nhwc' ? NHWC_AXIS[a] : a], [])], { T: gattr.float32, N: gattr.int(refs.length), Tidx: gattr.int32 });
  tr.set(0, { shape, ref: y, layout, batched });
}

/** Split sizes: attribute `split` (opset < 13), input 1 (>= 13), else equal parts (num_outputs at 18). */
function splitSizes(dim: number, outputs: number, given: number[] | undefined): number[] {
  if (given && given.length) return given;
  const part = Math.ceil(dim / outputs);
  return Array.from({ length: outputs }, (_, i) => Math.min(part, dim - part * i));
}

function emitSplit(tr: Translator): void {
  const x = tr.need(0);
  if (!dynamic(x)) throw tr.error('splits a constant it could not compute');
  const a = normAxis(attr.int(tr.node, 'axis', 0), x.shape.length);
  const sizes = splitSizes(x.shape[a], tr.node.output.length, listArg(tr, 'split', 1, 13));
  const graphAxis = x.layout === 'nhwc' ? NHWC_AXIS[a] : a;
  const y = tr.main('SplitV', [x.ref, tr.ints('sizes', sizes), tr.ints('axis', [graphAxis], [])], { T: gattr.float32, Tlen: gattr.int32, num_split: gattr.int(sizes.length) });
  sizes.forEach((s, k) => {
    const shape = [...x.shape];
    shape[a] = s;
    tr.set(k, { shape, ref: k === 0 ? y : `${y}:${k}`, layout: x.layout, batched: x.batched && a !== 0 });
  });
}

/** Gather with constant indices: GatherV2 on the remapped axis (scalar indices on an NHWC value: in ONNX layout). */
function emitGather(tr: Translator): void {
  const x = tr.need(0);
  if (!dynamic(x)) throw tr.error('gathers from a constant it could not compute');
  const idx = tr.constInput(1, 'indices')!;
  const a = normAxis(attr.int(tr.node, 'axis', 0), x.shape.length);
  const fixed = tr.own(normIndices(idx, x.shape[a]));
  const shape = [...x.shape.slice(0, a), ...idx.shape, ...x.shape.slice(a + 1)];
  const nhwc = x.layout === 'nhwc' && idx.rank === 1;
  const src = nhwc ? x.ref : tr.plain(x);
  const y = tr.main('GatherV2', [src, tr.constant('indices', fixed), tr.ints('axis', [nhwc ? NHWC_AXIS[a] : a], [])], { Tparams: gattr.float32, Tindices: gattr.int32, Taxis: gattr.int32, batch_dims: gattr.int(0) });
  tr.set(0, { shape, ref: y, layout: nhwc ? 'nhwc' : 'plain', batched: x.batched && a !== 0 });
}

function emitSqueeze(tr: Translator): void {
  const x = tr.need(0);
  if (!dynamic(x)) throw tr.error('squeezes a constant it could not compute');
  const gone = squeezeAxes(x.shape, listArg(tr, 'axes', 1, 13), x.batched);
  const shape = x.shape.filter((_, i) => !gone.includes(i));
  if (gone.length === 0) { tr.alias(0, x); return; }
  const onNhwc = x.layout === 'nhwc' && dropKeepsOrder(gone);
  const src = onNhwc ? x.ref : tr.plain(x);
  const dims = onNhwc ? gone.map((a) => NHWC_AXIS[a]) : gone;
  const y = tr.main('Squeeze', [src], { T: gattr.float32, squeeze_dims: gattr.ints(dims) });
  tr.set(0, { shape, ref: y, layout: 'plain', batched: x.batched && !gone.includes(0) });
}

/** Reductions: ReduceMean -> Mean etc., axes remapped on an NHWC value (kept NHWC with keepdims). */
function reduce(op: string, since: number) {
  return (tr: Translator) => {
    const x = tr.need(0);
    if (!dynamic(x)) throw tr.error('reduces a constant it could not compute');
    const keep = attr.int(tr.node, 'keepdims', 1) === 1;
    const given = listArg(tr, 'axes', 1, since);
    if ((!given || !given.length) && attr.int(tr.node, 'noop_with_empty_axes', 0) === 1) { tr.alias(0, x); return; }
    const rank = x.shape.length;
    const axes = given && given.length ? given.map((a) => normAxis(a, rank)) : x.shape.map((_, i) => i);
    const shape = keep ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
    const onNhwc = x.layout === 'nhwc' && (keep || dropKeepsOrder(axes));
    const src = onNhwc ? x.ref : tr.plain(x);
    const y = tr.main(op, [src, tr.ints('axes', onNhwc ? axes.map((a) => NHWC_AXIS[a]) : axes)], { T: gattr.float32, Tidx: gattr.int32, keep_dims: gattr.bool(keep) });
    tr.set(0, { shape, ref: y, layout: onNhwc && keep ? 'nhwc' : 'plain', batched: x.batched && !axes.includes(0) });
  };
}

/**
 * Pad (constant or reflect) of a computed tensor; pads [b1, ..., bn, e1, ..., en] (attribute before
 * opset 11, input 1 from 11, on the axes of input 3 from 18). 4-D tensors are padded in NHWC,
 * [[0, 0], [t, b], [l, r], [0, 0]] as receptive fields read it.
 */
function emitPad(tr: Translator): void {
  const x = tr.need(0);
  if (!dynamic(x)) throw tr.error('pads a constant it could not compute');
  const mode = attr.str(tr.node, 'mode', 'constant');
  const rank = x.shape.length;
  const raw = tr.opset < 11 ? attr.ints(tr.node, 'pads') ?? [] : tr.constInts(1, 'pads') ?? [];
  const value = tr.opset < 11 ? attr.float(tr.node, 'value', 0) : tr.constInput(2, 'constant value')?.dataSync()[0] ?? 0;
  const axes = (tr.opset >= 18 ? tr.constInts(3, 'axes') : undefined)?.map((a) => normAxis(a, rank)) ?? x.shape.map((_, i) => i);
  const pads = x.shape.map(() => [0, 0]);
  axes.forEach((a, i) => { pads[a] = [raw[i], raw[i + axes.length]]; });
  if (pads.some(([b, e]) => b < 0 || e < 0)) throw tr.error('has negative pads (cropping), which convlens does not translate');
  const nhwc = rank === 4;
  const src = nhwc ? tr.nhwc(x) : x.ref;
  const graphPads = nhwc ? TO_NHWC.map((a) => pads[a]) : pads;
  const paddings = tr.ints('paddings', graphPads.flat(), [rank, 2]);
  const shape = x.shape.map((d, i) => d + pads[i][0] + pads[i][1]);
  let y: string;
  if (mode === 'reflect') y = tr.main('MirrorPad', [src, paddings], { T: gattr.float32, Tpaddings: gattr.int32, mode: gattr.str('REFLECT') });
  else if (value === 0) y = tr.main('Pad', [src, paddings], { T: gattr.float32, Tpaddings: gattr.int32 });
  else y = tr.main('PadV2', [src, paddings, tr.scalar('value', value)], { T: gattr.float32, Tpaddings: gattr.int32 });
  tr.set(0, { shape, ref: y, layout: nhwc ? 'nhwc' : 'plain', batched: x.batched && pads[0][0] === 0 && pads[0][1] === 0 });
}

/**
 * Transpose: one Transpose node composing the layout permutation with ONNX's perm. The result
 * is NHWC when the input was (4-D), else in ONNX layout; no node when the composition is the
 * identity (an NCHW -> NHWC transpose of an NHWC value).
 */
function emitTranspose(tr: Translator): void {
  const x = tr.need(0);
  if (!dynamic(x)) throw tr.error('transposes a constant it could not compute');
  const rank = x.shape.length;
  const perm = attr.ints(tr.node, 'perm') ?? x.shape.map((_, i) => rank - 1 - i);
  const shape = perm.map((p) => x.shape[p]);
  const batched = x.batched && perm[0] === 0;
  // graph axis k of x holds ONNX axis src[k]
  const src = x.layout === 'nhwc' ? TO_NHWC : perm.map((_, i) => i);
  const toPlain = perm.map((p) => src.indexOf(p));
  const toNhwc = rank === 4 ? TO_NHWC.map((j) => src.indexOf(perm[j])) : undefined;
  const identity = (q: number[]) => q.every((v, i) => v === i);
  let layout: Layout = x.layout === 'nhwc' && toNhwc ? 'nhwc' : 'plain';
  if (identity(toPlain)) layout = 'plain';
  else if (toNhwc && identity(toNhwc)) layout = 'nhwc';
  const q = layout === 'nhwc' ? toNhwc! : toPlain;
  if (identity(q)) { tr.alias(0, { ...x, shape, layout, batched }); return; }
  const y = tr.main('Transpose', [x.ref, tr.ints('perm', q)], { T: gattr.float32, Tperm: gattr.int32 });
  tr.set(0, { shape, ref: y, layout, batched });
}

/** Expand of a computed tensor: a Mul by ones of the broadcast shape (ONNX Expand broadcasts both ways, as Mul does). */
function emitExpand(tr: Translator): void {
  const x = tr.need(0);
  if (!dynamic(x)) throw tr.error('expands a constant it could not compute');
  const target = tr.constInts(1, 'shape')!;
  const shape = broadcastShapes(x.shape, target);
  if (shape.length === x.shape.length && shape.every((d, i) => d === x.shape[i])) { tr.alias(0, x); return; }
  const ones = x.layout === 'nhwc' && shape.length === 4 ? nhwcShape(target.length === 4 ? target : [...Array(4 - target.length).fill(1), ...target]) : target;
  const y = tr.main('Mul', [x.ref, tr.constant('ones', tf.ones(ones.map((d) => Math.max(d, 1))), true)], { T: gattr.float32 });
  tr.set(0, { shape, ref: y, layout: x.layout === 'nhwc' && shape.length === 4 ? 'nhwc' : 'plain', batched: x.batched });
}

/** ONNX TensorProto data type -> the dtype a folded value gets. */
const castTo = (to: number): 'float32' | 'int32' | 'bool' => ([1, 10, 11, 16].includes(to) ? 'float32' : to === 9 ? 'bool' : 'int32');

const constantOnly = (what: string) => (tr: Translator) => { throw tr.error(`${what}; convlens supports it on constants only`); };

function constantAttr(n: OnnxNode): tf.Tensor {
  const a = n.attrs;
  if (a.get('value')?.t) return tensorOf(a.get('value')!.t!);
  if (a.has('value_float')) return tf.scalar(a.get('value_float')!.f ?? 0);
  if (a.has('value_floats')) return tf.tensor1d(a.get('value_floats')!.floats ?? []);
  if (a.has('value_int')) return tf.scalar(a.get('value_int')!.i ?? 0, 'int32');
  if (a.has('value_ints')) return tf.tensor1d(a.get('value_ints')!.ints ?? [], 'int32');
  throw new Error('Constant without a value');
}

const asConst = (t: tf.Tensor): Value => ({ shape: t.shape, const: t, layout: 'plain', batched: false });

export const SHAPE_OPS: OpTable = {
  Identity: { fold: (ins) => [ins[0]!.clone()], emit: (tr) => tr.alias(0, tr.need(0)) },
  Dropout: {
    check: (n) => (n.output[1] ? 'a mask output' : undefined),
    fold: (ins) => [ins[0]!.clone()],
    emit: (tr) => tr.alias(0, tr.need(0)),
  },
  Constant: {
    check: (n) => (n.attrs.has('sparse_value') || n.attrs.has('value_string') || n.attrs.has('value_strings') ? 'a sparse or string value' : undefined),
    emit: (tr) => tr.set(0, asConst(constantAttr(tr.node))),
  },
  ConstantOfShape: {
    fold: (ins, n) => {
      const v = n.attrs.get('value')?.t;
      const fill = v ? v.data[0] : 0;
      return [tf.fill(ints(ins[0]) ?? [], fill, v?.dtype === 'int32' ? 'int32' : 'float32')];
    },
    emit: constantOnly('builds a tensor from a computed shape'),
  },
  Shape: {
    emit: (tr) => {
      const s = tr.need(0).shape;
      const start = normAxis(attr.int(tr.node, 'start', 0), s.length);
      const end = tr.node.attrs.has('end') ? normAxis(attr.int(tr.node, 'end', s.length), s.length) : s.length;
      tr.set(0, asConst(tf.tensor1d(s.slice(Math.max(0, start), Math.min(s.length, end)), 'int32')));
    },
  },
  Size: { emit: (tr) => tr.set(0, asConst(tf.scalar(sizeOf(tr.need(0).shape), 'int32'))) },
  Cast: {
    fold: (ins, n) => [tf.cast(ins[0]!, castTo(attr.int(n, 'to', 1)))],
    emit: (tr) => {
      if (castTo(attr.int(tr.node, 'to', 1)) !== 'float32') throw tr.error('casts a value computed from the input to an integer or boolean type, which convlens does not translate');
      tr.alias(0, tr.need(0));
    },
  },
  Range: {
    fold: (ins) => {
      const [s, l, d] = ins.map((t) => t!.dataSync()[0]);
      return [tf.range(s, l, d, ins[0]!.dtype === 'float32' ? 'float32' : 'int32')];
    },
    emit: constantOnly('builds a range from computed bounds'),
  },
  Reshape: {
    fold: (ins, n) => [tf.reshape(ins[0]!, reshapeTarget(ins[0]!.shape, ints(ins[1])!, attr.int(n, 'allowzero', 0) === 1))],
    emit: (tr) => {
      const x = tr.need(0);
      const target = tr.constInts(1, 'target shape')!;
      emitReshapeTo(tr, x, reshapeTarget(x.shape, target, attr.int(tr.node, 'allowzero', 0) === 1));
    },
  },
  Flatten: {
    fold: (ins, n) => [tf.reshape(ins[0]!, flattenShape(ins[0]!.shape, attr.int(n, 'axis', 1)))],
    emit: (tr) => {
      const x = tr.need(0);
      emitReshapeTo(tr, x, flattenShape(x.shape, attr.int(tr.node, 'axis', 1)));
    },
  },
  Squeeze: {
    fold: (ins, n, opset) => {
      const axes = squeezeAxes(ins[0]!.shape, listArgFold(ins, n, opset, 'axes', 1, 13), false);
      return [tf.reshape(ins[0]!, ins[0]!.shape.filter((_, i) => !axes.includes(i)))];
    },
    emit: emitSqueeze,
  },
  Unsqueeze: {
    fold: (ins, n, opset) => [tf.reshape(ins[0]!, unsqueezeShape(ins[0]!.shape, listArgFold(ins, n, opset, 'axes', 1, 13) ?? []))],
    emit: (tr) => {
      const x = tr.need(0);
      emitReshapeTo(tr, x, unsqueezeShape(x.shape, listArg(tr, 'axes', 1, 13) ?? []));
    },
  },
  Concat: {
    fold: (ins, n) => {
      const ts = ins as tf.Tensor[];
      const dtype = ts.every((t) => t.dtype === ts[0].dtype) ? ts[0].dtype : 'float32';
      return [tf.concat(ts.map((t) => tf.cast(t, dtype)), normAxis(attr.int(n, 'axis', 0), ts[0].rank))];
    },
    emit: emitConcat,
  },
  Split: {
    fold: (ins, n, opset) => {
      const x = ins[0]!;
      const a = normAxis(attr.int(n, 'axis', 0), x.rank);
      return tf.split(x, splitSizes(x.shape[a], n.output.length, listArgFold(ins, n, opset, 'split', 1, 13)), a);
    },
    emit: emitSplit,
  },
  Slice: {
    fold: (ins, n, opset) => {
      const { starts, ends, axes, steps } = sliceArgs(ins, n, opset);
      return [foldSlice(ins[0]!, sliceRanges(ins[0]!.shape, starts, ends, axes, steps))];
    },
    emit: emitSlice,
  },
  Gather: {
    fold: (ins, n) => {
      const x = ins[0]!;
      const a = normAxis(attr.int(n, 'axis', 0), x.rank);
      return [tf.gather(x, normIndices(ins[1]!, x.shape[a]), a)];
    },
    emit: emitGather,
  },
  Transpose: { fold: (ins, n) => [tf.transpose(ins[0]!, attr.ints(n, 'perm'))], emit: emitTranspose },
  Expand: {
    fold: (ins) => [tf.broadcastTo(ins[0]!, broadcastShapes(ins[0]!.shape, ints(ins[1])!))],
    emit: emitExpand,
  },
  Pad: {
    check: (n) => (['constant', 'reflect'].includes(attr.str(n, 'mode', 'constant')) ? undefined : `mode=${attr.str(n, 'mode', 'constant')}`),
    emit: emitPad,
  },
  ReduceMean: { emit: reduce('Mean', 18) },
  ReduceMax: { emit: reduce('Max', 18) },
  ReduceMin: { emit: reduce('Min', 18) },
  ReduceSum: { emit: reduce('Sum', 13) },
};
