/**
 * Tiny models with hand-set weights for the adapter tests, and a float64 reference
 * implementation of the few ops they use (independent of tfjs), so logits, activations and
 * gradients can be checked against values computed by hand.
 * Tensors here are NHWC, flat row-major arrays with a shape.
 */
import * as tf from '@tensorflow/tfjs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

// ---- deterministic values ----

/** `n` values in [-scale, scale], deterministic for a seed (mulberry32). */
export function vals(n: number, seed: number, scale = 1): number[] {
  let a = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    // round to 1/64 so the values are exact in float32 and float64 alike
    out.push(Math.round((2 * u - 1) * scale * 64) / 64);
  }
  return out;
}

// ---- float64 reference ops ----

export interface T64 {
  data: Float64Array;
  shape: number[];
}

export const t64 = (data: ArrayLike<number>, shape: number[]): T64 => ({ data: Float64Array.from(data), shape });
export const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** NHWC conv2d, kernel [kh, kw, cin, cout], TF padding rules ('same' pads more at the bottom/right). */
export function conv64(x: T64, kernel: ArrayLike<number>, kshape: [number, number, number, number], bias: ArrayLike<number> | null, padding: 'same' | 'valid', stride = 1): T64 {
  const [n, h, w, c] = x.shape;
  const [kh, kw, kc, o] = kshape;
  if (kc !== c) throw new Error(`conv64: ${c} input channels vs kernel ${kc}`);
  const oh = padding === 'same' ? Math.ceil(h / stride) : Math.ceil((h - kh + 1) / stride);
  const ow = padding === 'same' ? Math.ceil(w / stride) : Math.ceil((w - kw + 1) / stride);
  const pt = padding === 'same' ? Math.floor(Math.max((oh - 1) * stride + kh - h, 0) / 2) : 0;
  const pl = padding === 'same' ? Math.floor(Math.max((ow - 1) * stride + kw - w, 0) / 2) : 0;
  const out = new Float64Array(n * oh * ow * o);
  for (let b = 0; b < n; b++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) for (let q = 0; q < o; q++) {
    let s = bias ? bias[q] : 0;
    for (let di = 0; di < kh; di++) for (let dj = 0; dj < kw; dj++) {
      const yi = i * stride + di - pt;
      const xj = j * stride + dj - pl;
      if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;
      for (let p = 0; p < c; p++) s += x.data[((b * h + yi) * w + xj) * c + p] * kernel[((di * kw + dj) * c + p) * o + q];
    }
    out[((b * oh + i) * ow + j) * o + q] = s;
  }
  return { data: out, shape: [n, oh, ow, o] };
}

export const relu64 = (x: T64): T64 => ({ data: x.data.map((v) => Math.max(v, 0)), shape: x.shape });
export const add64 = (a: T64, b: T64): T64 => ({ data: a.data.map((v, i) => v + b.data[i]), shape: a.shape });

/** Mean over the spatial axes: [n,h,w,c] -> [n,c]. */
export function gap64(x: T64): T64 {
  const [n, h, w, c] = x.shape;
  const out = new Float64Array(n * c);
  for (let b = 0; b < n; b++) for (let p = 0; p < h * w; p++) for (let q = 0; q < c; q++) out[b * c + q] += x.data[(b * h * w + p) * c + q] / (h * w);
  return { data: out, shape: [n, c] };
}

/** [n,k] x kernel [k,m] + bias. */
export function dense64(x: T64, kernel: ArrayLike<number>, m: number, bias: ArrayLike<number> | null): T64 {
  const [n, k] = x.shape;
  const out = new Float64Array(n * m);
  for (let b = 0; b < n; b++) for (let j = 0; j < m; j++) {
    let s = bias ? bias[j] : 0;
    for (let i = 0; i < k; i++) s += x.data[b * k + i] * kernel[i * m + j];
    out[b * m + j] = s;
  }
  return { data: out, shape: [n, m] };
}

export function softmax64(x: T64): T64 {
  const [n, m] = x.shape;
  const out = new Float64Array(n * m);
  for (let b = 0; b < n; b++) {
    const row = x.data.slice(b * m, (b + 1) * m);
    const mx = Math.max(...row);
    const e = row.map((v) => Math.exp(v - mx));
    const s = e.reduce((a, v) => a + v, 0);
    for (let j = 0; j < m; j++) out[b * m + j] = e[j] / s;
  }
  return { data: out, shape: [n, m] };
}

/** sum_ij W[i,j] * logits[i,j]. */
export const score64 = (logits: T64, weights: ArrayLike<number>) => logits.data.reduce((s, v, i) => s + v * weights[i], 0);

/** One-hot rows [n, classes] for the given class per example. */
export function oneHotRows(classes: readonly number[], numClasses: number): number[] {
  const out = new Array(classes.length * numClasses).fill(0);
  classes.forEach((c, i) => { out[i * numClasses + c] = 1; });
  return out;
}

// ---- the functional DAG: conv -> conv, skip add, GAP, dense softmax ----

export interface DagWeights {
  k1: number[]; b1: number[]; // c1: 3x3, 1 -> 2, relu
  k2: number[]; b2: number[]; // c2: 3x3, 2 -> 2, relu
  kd: number[]; bd: number[]; // fc: 2 -> 3, softmax
}

export const DAG_INPUT: [number, number, number] = [4, 4, 1];

export function dagWeights(): DagWeights {
  return {
    k1: vals(3 * 3 * 1 * 2, 11, 1), b1: [0.125, -0.0625],
    k2: vals(3 * 3 * 2 * 2, 12, 0.5), b2: [-0.0625, 0.1875],
    kd: [1.5, -1, 0.5, -0.75, 1.25, 0.25], bd: [0.1, -0.2, 0.05],
  };
}

/**
 * img [4,4,1] -> c1 (conv 3x3 same, relu) -> c2 (conv 3x3 same, relu) -> skip = add(c1, c2)
 * -> gap -> fc (dense 3, softmax).
 */
export function buildDag(w: DagWeights = dagWeights()): tf.LayersModel {
  const input = tf.input({ shape: DAG_INPUT, name: 'img' });
  const c1 = tf.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' });
  const c2 = tf.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2' });
  const a1 = c1.apply(input) as tf.SymbolicTensor;
  const a2 = c2.apply(a1) as tf.SymbolicTensor;
  const s = tf.layers.add({ name: 'skip' }).apply([a1, a2]) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(s) as tf.SymbolicTensor;
  const fc = tf.layers.dense({ units: 3, activation: 'softmax', name: 'fc' });
  const out = fc.apply(g) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'dag' });
  c1.setWeights([tf.tensor4d(w.k1, [3, 3, 1, 2]), tf.tensor1d(w.b1)]);
  c2.setWeights([tf.tensor4d(w.k2, [3, 3, 2, 2]), tf.tensor1d(w.b2)]);
  fc.setWeights([tf.tensor2d(w.kd, [2, 3]), tf.tensor1d(w.bd)]);
  return model;
}

/** The DAG from c1's activation on: a1 + relu(conv(a1)) -> gap -> dense (pre-softmax). */
export function dagTail64(w: DagWeights, a1: T64) {
  const z2 = conv64(a1, w.k2, [3, 3, 2, 2], w.b2, 'same');
  const a2 = relu64(z2);
  const s = add64(a1, a2);
  const logits = dense64(gap64(s), w.kd, 3, w.bd);
  return { z2, a2, s, logits };
}

export function dag64(w: DagWeights, x: T64) {
  const z1 = conv64(x, w.k1, [3, 3, 1, 2], w.b1, 'same');
  const a1 = relu64(z1);
  return { z1, a1, ...dagTail64(w, a1) };
}

// ---- the same DAG with a nested tf.sequential block in place of c2 ----

export interface NestedWeights {
  k1: number[]; b1: number[]; // c1: 3x3, 1 -> 2, relu
  kb1: number[]; bb1: number[]; // block/b1: 3x3, 2 -> 2, relu
  kb2: number[]; bb2: number[]; // block/b2: 1x1, 2 -> 2, linear
  kd: number[]; bd: number[];
}

export function nestedWeights(): NestedWeights {
  return {
    k1: vals(18, 21, 1), b1: [0.0625, -0.125],
    kb1: vals(36, 22, 0.5), bb1: [0.125, -0.0625],
    kb2: [0.75, -0.5, 0.25, 1], bb2: [0.03125, -0.03125],
    kd: [-1, 0.5, 1.25, 0.75, -0.25, -1.5], bd: [0, 0.1, -0.1],
  };
}

/** img -> c1 -> block = sequential[b1 (3x3 relu), b2 (1x1)] -> skip = add(c1, block) -> gap -> fc softmax. */
export function buildNested(w: NestedWeights = nestedWeights()): { model: tf.LayersModel; block: tf.Sequential } {
  const input = tf.input({ shape: DAG_INPUT, name: 'img' });
  const c1 = tf.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' });
  const b1 = tf.layers.conv2d({ inputShape: [4, 4, 2], filters: 2, kernelSize: 3, padding: 'same', activation: 'relu', name: 'b1' });
  const b2 = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'b2' });
  const block = tf.sequential({ layers: [b1, b2], name: 'block' });
  const a1 = c1.apply(input) as tf.SymbolicTensor;
  const blk = block.apply(a1) as tf.SymbolicTensor;
  const s = tf.layers.add({ name: 'skip' }).apply([a1, blk]) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(s) as tf.SymbolicTensor;
  const fc = tf.layers.dense({ units: 3, activation: 'softmax', name: 'fc' });
  const model = tf.model({ inputs: input, outputs: fc.apply(g) as tf.SymbolicTensor, name: 'nested' });
  c1.setWeights([tf.tensor4d(w.k1, [3, 3, 1, 2]), tf.tensor1d(w.b1)]);
  b1.setWeights([tf.tensor4d(w.kb1, [3, 3, 2, 2]), tf.tensor1d(w.bb1)]);
  b2.setWeights([tf.tensor4d(w.kb2, [1, 1, 2, 2]), tf.tensor1d(w.bb2)]);
  fc.setWeights([tf.tensor2d(w.kd, [2, 3]), tf.tensor1d(w.bd)]);
  return { model, block };
}

/** From the block's first layer activation (b1) on: a1 + conv1x1(b1) -> gap -> dense. */
export function nestedTailFromB1_64(w: NestedWeights, a1: T64, ab1: T64) {
  const blk = conv64(ab1, w.kb2, [1, 1, 2, 2], w.bb2, 'valid');
  return dense64(gap64(add64(a1, blk)), w.kd, 3, w.bd);
}

export function nestedTailFromC1_64(w: NestedWeights, a1: T64) {
  const zb1 = conv64(a1, w.kb1, [3, 3, 2, 2], w.bb1, 'same');
  const ab1 = relu64(zb1);
  return { zb1, ab1, logits: nestedTailFromB1_64(w, a1, ab1) };
}

export function nested64(w: NestedWeights, x: T64) {
  const z1 = conv64(x, w.k1, [3, 3, 1, 2], w.b1, 'same');
  const a1 = relu64(z1);
  return { z1, a1, ...nestedTailFromC1_64(w, a1) };
}

// ---- single-nonlinearity models for the ReLU rules ----

/** relu6: activation 'relu6'; relu6layer: a ReLU layer with maxValue 6 (Keras ReLU(6.)). */
export type ActKind = 'relu' | 'relu6' | 'relu6layer' | 'leaky';
export const LEAKY_ALPHA = 0.25;

/** y = sum_i w_i * act(x_i): input [1, 2, 3] -> act -> flatten -> dense(1, no bias, kernel w). */
export function buildActModel(kind: ActKind, w: readonly number[]): tf.LayersModel {
  const input = tf.input({ shape: [1, 2, 3], name: 'x' });
  const act = kind === 'leaky'
    ? tf.layers.leakyReLU({ alpha: LEAKY_ALPHA, name: 'act' })
    : kind === 'relu6layer'
      ? tf.layers.reLU({ maxValue: 6, name: 'act' })
      : tf.layers.activation({ activation: kind, name: 'act' });
  const flat = tf.layers.flatten({ name: 'flat' }).apply(act.apply(input) as tf.SymbolicTensor) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 1, useBias: false, name: 'out' });
  const model = tf.model({ inputs: input, outputs: out.apply(flat) as tf.SymbolicTensor });
  out.setWeights([tf.tensor2d([...w], [w.length, 1])]);
  return model;
}

// ---- a hand-written GraphModel (GraphDef JSON as tfjs-converter writes it) ----

export interface GraphWeights {
  filter: number[]; // [2,2,1,2]
  bias: number[]; // [2]
  matmul: number[]; // [2,3]
}

export function graphWeights(): GraphWeights {
  return {
    filter: [0.5, -1, 1.25, 0.75, -0.5, 0.25, 1, -0.75],
    bias: [0.125, -0.25],
    matmul: [1, -0.5, 0.25, -1.5, 0.75, 2],
  };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const dims = (shape: number[]) => ({ dim: shape.map((d) => ({ size: String(d) })) });
const constNode = (name: string, dtype: 'DT_FLOAT' | 'DT_INT32', shape: number[]) => ({
  name, op: 'Const',
  attr: { value: { tensor: { dtype, tensorShape: dims(shape) } }, dtype: { type: dtype } },
});

/**
 * Writes model.json + weights.bin: x [-1,4,4,1] -> conv (Conv2D 2x2 VALID, 2 maps) -> bias_add ->
 * relu -> mean (axes [1,2], an int32 Const) -> logits (MatMul [2,3]) -> probs (Softmax).
 */
export async function writeTinyGraphModel(dir: string, w: GraphWeights = graphWeights()): Promise<void> {
  const float = { type: 'DT_FLOAT' };
  const node = [
    { name: 'x', op: 'Placeholder', attr: { dtype: float, shape: { shape: dims([-1, 4, 4, 1]) } } },
    constNode('conv/filter', 'DT_FLOAT', [2, 2, 1, 2]),
    constNode('conv/bias', 'DT_FLOAT', [2]),
    constNode('mean/axes', 'DT_INT32', [2]),
    constNode('dense/kernel', 'DT_FLOAT', [2, 3]),
    {
      name: 'conv', op: 'Conv2D', input: ['x', 'conv/filter'],
      attr: {
        T: float, strides: { list: { i: ['1', '1', '1', '1'] } }, padding: { s: b64('VALID') },
        data_format: { s: b64('NHWC') }, dilations: { list: { i: ['1', '1', '1', '1'] } },
        use_cudnn_on_gpu: { b: true }, explicit_paddings: { list: {} },
      },
    },
    { name: 'bias_add', op: 'BiasAdd', input: ['conv', 'conv/bias'], attr: { T: float, data_format: { s: b64('NHWC') } } },
    { name: 'relu', op: 'Relu', input: ['bias_add'], attr: { T: float } },
    { name: 'mean', op: 'Mean', input: ['relu', 'mean/axes'], attr: { T: float, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } } },
    { name: 'logits', op: 'MatMul', input: ['mean', 'dense/kernel'], attr: { T: float, transpose_a: { b: false }, transpose_b: { b: false } } },
    { name: 'probs', op: 'Softmax', input: ['logits'], attr: { T: float } },
  ];
  const modelJson = {
    format: 'graph-model',
    generatedBy: '2.15.0',
    convertedBy: 'TensorFlow.js Converter v4.22.0',
    modelTopology: { node, library: {}, versions: { producer: 1645 } },
    weightsManifest: [{
      paths: ['weights.bin'],
      weights: [
        { name: 'conv/filter', shape: [2, 2, 1, 2], dtype: 'float32' },
        { name: 'conv/bias', shape: [2], dtype: 'float32' },
        { name: 'mean/axes', shape: [2], dtype: 'int32' },
        { name: 'dense/kernel', shape: [2, 3], dtype: 'float32' },
      ],
    }],
  };
  const parts = [new Float32Array(w.filter), new Float32Array(w.bias), new Int32Array([1, 2]), new Float32Array(w.matmul)];
  const bytes = Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
  await writeFile(join(dir, 'weights.bin'), bytes);
  await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
}

/** The tiny graph model by hand: pre-activation z, relu, logits. */
export function graph64(w: GraphWeights, x: T64) {
  const z = conv64(x, w.filter, [2, 2, 1, 2], w.bias, 'valid');
  const a = relu64(z);
  return { z, a, logits: dense64(gap64(a), w.matmul, 3, null) };
}

/** Values of a tensor as float64, disposing nothing. */
export const read64 = (t: tf.Tensor): Float64Array => Float64Array.from(t.dataSync());
