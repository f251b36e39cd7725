/**
 * ONNX translation, op by op: tiny ONNX models are built here (ModelProto encoded with
 * onnx-proto) with hand-set or seeded weights, translated to a TensorFlow.js GraphModel and run
 * on NHWC inputs; the outputs are compared with plain-loop NCHW references written below
 * (PyTorch's definitions) to 1e-5. Also: the one-line refusal of unsupported nodes, symbolic
 * image sizes, external data, aliases, the weights hash and the CAM head of a GAP + Gemm model.
 */
import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { findCamHead } from '../../pipeline/methods/cam.ts';
import { artifactsHandler } from '../../pipeline/model/io.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { decodeOnnxModel } from '../../pipeline/model/onnx/decode.ts';
import { translateOnnx, type OnnxTranslation } from '../../pipeline/model/onnx/translate.ts';

const { onnx } = onnxProto;

// ---------------------------------------------------------------- building ONNX models

type AttrValue = number | number[] | string | { f: number } | { fs: number[] };
const f = (v: number) => ({ f: v });

interface NodeSpec { op: string; inputs: string[]; outputs: string[]; name?: string; attrs?: Record<string, AttrValue>; domain?: string }
interface Init { name: string; dims: number[]; values: number[]; int64?: boolean }
interface ModelSpec {
  opset: number;
  input?: { name: string; dims: (number | string)[] };
  output?: string;
  nodes: NodeSpec[];
  inits?: Init[];
  /** Initializers stored in this external file (name relative to the model). */
  external?: string;
}

function attrProto(name: string, v: AttrValue) {
  if (typeof v === 'string') return { name, type: 3, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: 7, ints: v };
  if (typeof v === 'number') return { name, type: 2, i: v };
  if ('fs' in v) return { name, type: 6, floats: v.fs };
  return { name, type: 1, f: v.f };
}

/** Encodes a model; with `external`, float initializers go to that file (offset/length) and the bytes are returned too. */
function buildModel(spec: ModelSpec): { bytes: Uint8Array; external?: Uint8Array } {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const initializer = (spec.inits ?? []).map((t) => {
    if (t.int64) return { name: t.name, dims: t.dims, dataType: 7, int64Data: t.values };
    if (!spec.external) return { name: t.name, dims: t.dims, dataType: 1, floatData: t.values };
    const bytes = new Uint8Array(Float32Array.from(t.values).buffer);
    const entry = { name: t.name, dims: t.dims, dataType: 1, dataLocation: 1, externalData: [{ key: 'location', value: spec.external }, { key: 'offset', value: String(offset) }, { key: 'length', value: String(bytes.byteLength) }] };
    chunks.push(bytes);
    offset += bytes.byteLength;
    return entry;
  });
  const input = spec.input ?? { name: 'input', dims: ['batch', 3, 6, 6] };
  const tensorType = (dims: (number | string)[]) => ({ tensorType: { elemType: 1, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } });
  const model = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: spec.opset }],
    producerName: 'convlens-test',
    graph: {
      name: 'g',
      node: spec.nodes.map((n, i) => ({ name: n.name ?? `n${i}_${n.op}`, opType: n.op, domain: n.domain ?? '', input: n.inputs, output: n.outputs, attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attrProto(k, v)) })),
      initializer,
      input: [{ name: input.name, type: tensorType(input.dims) }],
      output: [{ name: spec.output ?? 'y', type: tensorType([]) }],
    },
  };
  const bytes = onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish();
  const external = chunks.length ? Uint8Array.from(chunks.flatMap((c) => [...c])) : undefined;
  return { bytes, external };
}

const noFiles = async (p: string): Promise<Uint8Array> => { throw new Error(`unexpected read of ${p}`); };

async function translate(spec: ModelSpec): Promise<OnnxTranslation> {
  return translateOnnx(await decodeOnnxModel(buildModel(spec).bytes, 'test.onnx', noFiles), 'test.onnx');
}

/** Runs a translated model on an NCHW input (fed as NHWC); returns the output in ONNX layout. */
async function run(spec: ModelSpec, x: T): Promise<T & { translation: OnnxTranslation }> {
  const t = await translate(spec);
  const model = await tf.loadGraphModel(artifactsHandler(t.artifacts));
  const y = tf.tidy(() => model.execute(tf.transpose(tf.tensor4d(Float32Array.from(x.data), x.shape as [number, number, number, number]), [0, 2, 3, 1])) as tf.Tensor);
  const out = { data: Float64Array.from(y.dataSync()), shape: y.shape, translation: t };
  y.dispose();
  model.dispose();
  return out;
}

// ---------------------------------------------------------------- NCHW references (plain loops)

interface T { data: Float64Array; shape: number[] }

/** Deterministic values in [-1, 1). */
function seeded(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}
const tensor = (shape: number[], seed: number): T => ({ data: Float64Array.from(seeded(shape.reduce((a, b) => a * b, 1), seed)), shape });
const at = (t: T, n: number, c: number, h: number, w: number) => t.data[((n * t.shape[1] + c) * t.shape[2] + h) * t.shape[3] + w];

interface ConvOpts { pads?: number[]; strides?: number[]; dilations?: number[]; group?: number }

/** PyTorch conv2d: pads [top, left, bottom, right] as ONNX orders them. */
function conv(x: T, w: T, b: number[] | undefined, o: ConvOpts = {}): T {
  const [N, , H, W] = x.shape;
  const [O, Cg, kh, kw] = w.shape;
  const [pt, pl, pb, pr] = o.pads ?? [0, 0, 0, 0];
  const [sh, sw] = o.strides ?? [1, 1];
  const [dh, dw] = o.dilations ?? [1, 1];
  const g = o.group ?? 1;
  const oh = Math.floor((H + pt + pb - ((kh - 1) * dh + 1)) / sh) + 1;
  const ow = Math.floor((W + pl + pr - ((kw - 1) * dw + 1)) / sw) + 1;
  const out = new Float64Array(N * O * oh * ow);
  for (let n = 0; n < N; n++) for (let oc = 0; oc < O; oc++) {
    const grp = Math.floor(oc / (O / g));
    for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      let s = b ? b[oc] : 0;
      for (let c = 0; c < Cg; c++) for (let a = 0; a < kh; a++) for (let e = 0; e < kw; e++) {
        const ih = i * sh - pt + a * dh;
        const iw = j * sw - pl + e * dw;
        if (ih >= 0 && ih < H && iw >= 0 && iw < W) s += at(x, n, grp * Cg + c, ih, iw) * w.data[((oc * Cg + c) * kh + a) * kw + e];
      }
      out[((n * O + oc) * oh + i) * ow + j] = s;
    }
  }
  return { data: out, shape: [N, O, oh, ow] };
}

/** PyTorch's pooled size: floor/ceil, and a ceil-mode window must start inside the input or left padding. */
function pooled(size: number, k: number, s: number, pb: number, pe: number, ceil: boolean): number {
  let o = (ceil ? Math.ceil((size + pb + pe - k) / s) : Math.floor((size + pb + pe - k) / s)) + 1;
  if (ceil && (o - 1) * s >= size + pb) o--;
  return o;
}

/** PyTorch max_pool2d / avg_pool2d (divisor: window cut at in + pad_end, or input cells only). */
function pool(x: T, kind: 'max' | 'avg', k: number[], s: number[], pads: number[], ceil: boolean, includePad = false): T {
  const [N, C, H, W] = x.shape;
  const [pt, pl, pb, pr] = pads;
  const oh = pooled(H, k[0], s[0], pt, pb, ceil);
  const ow = pooled(W, k[1], s[1], pl, pr, ceil);
  const out = new Float64Array(N * C * oh * ow);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    const h0 = i * s[0] - pt;
    const w0 = j * s[1] - pl;
    const h1 = Math.min(h0 + k[0], H + pb);
    const w1 = Math.min(w0 + k[1], W + pr);
    let acc = kind === 'max' ? -Infinity : 0;
    let cells = 0;
    for (let a = Math.max(h0, 0); a < Math.min(h1, H); a++) for (let e = Math.max(w0, 0); e < Math.min(w1, W); e++) {
      const v = at(x, n, c, a, e);
      acc = kind === 'max' ? Math.max(acc, v) : acc + v;
      cells++;
    }
    out[((n * C + c) * oh + i) * ow + j] = kind === 'max' ? acc : acc / (includePad ? (h1 - h0) * (w1 - w0) : cells);
  }
  return { data: out, shape: [N, C, oh, ow] };
}

const map = (x: T, fn: (v: number, i: number) => number): T => ({ data: x.data.map(fn), shape: x.shape });

/** erf to ~1e-7 (Abramowitz & Stegun 7.1.26 is 1.5e-7; this series/continued form is used only at 1e-5). */
function erf(x: number): number {
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y = 1 - t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? y : -y;
}

function expectClose(got: { data: ArrayLike<number>; shape: number[] }, want: T, tol = 1e-5): void {
  expect(got.shape).toEqual(want.shape);
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i] - want.data[i]));
  expect(worst).toBeLessThan(tol);
}

const init = (name: string, t: T): Init => ({ name, dims: t.shape, values: Array.from(t.data) });
const i64 = (name: string, values: number[], dims = [values.length]): Init => ({ name, dims, values, int64: true });

beforeAll(async () => {
  await initBackend('wasm', silentLogger);
});

// ---------------------------------------------------------------- tests

describe('ONNX convolutions', () => {
  const x = tensor([2, 3, 6, 6], 1);
  const conv1 = (attrs: Record<string, AttrValue>, w: T, bias?: number[]): ModelSpec => ({
    opset: 17,
    nodes: [{ op: 'Conv', name: '/c/Conv', inputs: ['input', 'W', ...(bias ? ['B'] : [])], outputs: ['y'], attrs }],
    inits: [init('W', w), ...(bias ? [{ name: 'B', dims: [bias.length], values: bias }] : [])],
  });

  it('explicit asymmetric pads: a Pad node [top, bottom, left, right] then a VALID conv; the BiasAdd carries the ONNX name', async () => {
    const w = tensor([4, 3, 3, 2], 2);
    const b = [0.5, -0.25, 0.125, 1];
    const y = await run(conv1({ kernel_shape: [3, 2], pads: [1, 0, 2, 1] }, w, b), x);
    expectClose(y, conv(x, w, b, { pads: [1, 0, 2, 1] }));
    const nodes = y.translation.nodes;
    const pad = nodes.find((n) => n.name === '/c/Conv/pad')!;
    expect(pad.op).toBe('Pad');
    expect(nodes.find((n) => n.name === '/c/Conv')!.op).toBe('BiasAdd');
    expect(nodes.find((n) => n.name === '/c/Conv/conv')!.op).toBe('Conv2D');
    const paddings = y.translation.weightSpecs.findIndex((s) => s.name === '/c/Conv/pad/paddings');
    expect(paddings).toBeGreaterThanOrEqual(0);
  });

  it('stride 2 on an even input, and SAME_UPPER / SAME_LOWER auto_pad', async () => {
    const w = tensor([2, 3, 3, 3], 3);
    expectClose(await run(conv1({ kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, w), x), conv(x, w, undefined, { strides: [2, 2], pads: [1, 1, 1, 1] }));
    // 6 px, stride 2, k 4: total padding 2 (1 + 1); k 3: total 1, at the end (UPPER) or the start (LOWER)
    const w3 = tensor([2, 3, 3, 3], 4);
    expectClose(await run(conv1({ kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' }, w3), x), conv(x, w3, undefined, { strides: [2, 2], pads: [0, 0, 1, 1] }));
    expectClose(await run(conv1({ kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_LOWER' }, w3), x), conv(x, w3, undefined, { strides: [2, 2], pads: [1, 1, 0, 0] }));
  });

  it('dilated convolution', async () => {
    const w = tensor([2, 3, 2, 2], 5);
    expectClose(await run(conv1({ kernel_shape: [2, 2], dilations: [2, 2], pads: [1, 1, 1, 1] }, w), x), conv(x, w, undefined, { dilations: [2, 2], pads: [1, 1, 1, 1] }));
  });

  it('grouped (groups = 2: Split, a Conv2D per group, ConcatV2) and depthwise with multiplier 2', async () => {
    const x4 = tensor([2, 4, 5, 5], 6);
    const w = tensor([6, 2, 3, 3], 7);
    const b = [1, 2, 3, -1, -2, -3];
    const y = await run({ ...conv1({ kernel_shape: [3, 3], group: 2, pads: [1, 1, 1, 1] }, w, b), input: { name: 'input', dims: ['n', 4, 5, 5] } }, x4);
    expectClose(y, conv(x4, w, b, { group: 2, pads: [1, 1, 1, 1] }));
    expect(y.translation.nodes.filter((n) => n.op === 'Conv2D')).toHaveLength(2);
    const wd = tensor([6, 1, 3, 3], 8);
    const yd = await run(conv1({ kernel_shape: [3, 3], group: 3, strides: [2, 2] }, wd), x);
    expectClose(yd, conv(x, wd, undefined, { group: 3, strides: [2, 2] }));
    expect(yd.translation.nodes.find((n) => n.name === '/c/Conv')!.op).toBe('DepthwiseConv2dNative');
  });
});

describe('ONNX pooling', () => {
  // all negative: padding must never win a max window
  const x = map(tensor([1, 2, 7, 7], 9), (v) => v - 2);

  it('ceil-mode MaxPool with and without pads (the last window starts inside the input)', async () => {
    const pool1 = (attrs: Record<string, AttrValue>): ModelSpec => ({ opset: 17, input: { name: 'input', dims: [1, 2, 7, 7] }, nodes: [{ op: 'MaxPool', inputs: ['input'], outputs: ['y'], attrs }] });
    // 7 px, k 2, s 2, ceil: 4 windows, the last reading one row
    expectClose(await run(pool1({ kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }), x), pool(x, 'max', [2, 2], [2, 2], [0, 0, 0, 0], true));
    // 7 px, k 3, s 2, pads 1, ceil: (7 + 2 - 3) / 2 + 1 = 4
    expectClose(await run(pool1({ kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 }), x), pool(x, 'max', [3, 3], [2, 2], [1, 1, 1, 1], true));
    // 7 px, k 2, s 3, pad 1, ceil: ceil(6 / 3) + 1 = 3 windows, the third would start at 6 - 1 = 5 < 8: kept; floor mode: 3 too
    expectClose(await run(pool1({ kernel_shape: [2, 2], strides: [3, 3], pads: [1, 1, 1, 1], ceil_mode: 1 }), x), pool(x, 'max', [2, 2], [3, 3], [1, 1, 1, 1], true));
    // floor mode leaves a remainder unread
    expectClose(await run(pool1({ kernel_shape: [2, 2], strides: [2, 2] }), x), pool(x, 'max', [2, 2], [2, 2], [0, 0, 0, 0], false));
  });

  it('ceil mode drops a last window that would start in the end padding', () => {
    // 3 px, k 2, s 2, pads 1: ceil((3 + 2 - 2) / 2) + 1 = 3, but (3 - 1) * 2 = 4 >= 3 + 1, so 2
    expect(pooled(3, 2, 2, 1, 1, true)).toBe(2);
  });

  it('AveragePool with count_include_pad 0 and 1, pads and ceil mode (divisor per window as PyTorch)', async () => {
    const avg = (attrs: Record<string, AttrValue>): ModelSpec => ({ opset: 17, input: { name: 'input', dims: [1, 2, 7, 7] }, nodes: [{ op: 'AveragePool', name: '/p/AveragePool', inputs: ['input'], outputs: ['y'], attrs }] });
    for (const include of [0, 1]) {
      for (const ceil of [0, 1]) {
        const y = await run(avg({ kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: include, ceil_mode: ceil }), x);
        expectClose(y, pool(x, 'avg', [3, 3], [2, 2], [1, 1, 1, 1], ceil === 1, include === 1));
      }
    }
    // no padding, windows inside the input: a plain AvgPool, no correction
    const plain = await run(avg({ kernel_shape: [2, 2], strides: [2, 2] }), x);
    expectClose(plain, pool(x, 'avg', [2, 2], [2, 2], [0, 0, 0, 0], false));
    expect(plain.translation.nodes.find((n) => n.name === '/p/AveragePool')!.op).toBe('AvgPool');
  });

  it('GlobalAveragePool is a Mean over H, W (keep dims); GlobalMaxPool a Max', async () => {
    const y = await run({ opset: 17, input: { name: 'input', dims: [1, 2, 7, 7] }, nodes: [{ op: 'GlobalAveragePool', name: 'gap', inputs: ['input'], outputs: ['y'] }] }, x);
    expectClose(y, pool(x, 'avg', [7, 7], [1, 1], [0, 0, 0, 0], false));
    expect(y.translation.nodes.find((n) => n.name === 'gap')!.op).toBe('Mean');
    expectClose(await run({ opset: 17, input: { name: 'input', dims: [1, 2, 7, 7] }, nodes: [{ op: 'GlobalMaxPool', inputs: ['input'], outputs: ['y'] }] }, x), pool(x, 'max', [7, 7], [1, 1], [0, 0, 0, 0], false));
  });
});

describe('ONNX classifier heads and layout changes', () => {
  const x = tensor([3, 3, 6, 6], 11);
  const w = tensor([4, 3, 3, 3], 12);
  const fc = tensor([5, 64], 13);
  const fcBias = seeded(5, 14);
  /** logits = Gemm(flatten(relu(conv(x))), fc^T) + b, PyTorch's order of the flattened features (C, H, W). */
  const reference = (alpha = 1, beta = 1) => {
    const a = map(conv(x, w, undefined), (v) => Math.max(v, 0));
    const N = x.shape[0];
    const out = new Float64Array(N * 5);
    for (let n = 0; n < N; n++) for (let k = 0; k < 5; k++) {
      let s = 0;
      for (let i = 0; i < 64; i++) s += a.data[n * 64 + i] * fc.data[k * 64 + i];
      out[n * 5 + k] = alpha * s + beta * fcBias[k];
    }
    return { data: out, shape: [N, 5] };
  };
  const head = (flatten: NodeSpec[], alpha = 1, beta = 1): ModelSpec => ({
    opset: 17,
    output: 'logits',
    nodes: [
      { op: 'Conv', name: '/conv/Conv', inputs: ['input', 'W'], outputs: ['c'], attrs: { kernel_shape: [3, 3] } },
      { op: 'Relu', name: '/relu/Relu', inputs: ['c'], outputs: ['r'] },
      ...flatten,
      { op: 'Gemm', name: '/fc/Gemm', inputs: ['f', 'fc.weight', 'fc.bias'], outputs: ['logits'], attrs: { transB: 1, alpha: f(alpha), beta: f(beta) } },
    ],
    // the int64 constants of the Reshape pattern (unused initializers are dropped)
    inits: [init('W', w), init('fc.weight', fc), { name: 'fc.bias', dims: [5], values: fcBias }, i64('zero', [0], []), i64('axes0', [0]), i64('minus1', [-1])],
  });

  it('Flatten after a conv with H*W > 1 puts the features in NCHW order (any batch)', async () => {
    const y = await run(head([{ op: 'Flatten', name: '/Flatten', inputs: ['r'], outputs: ['f'], attrs: { axis: 1 } }]), x);
    expectClose(y, reference());
    expect(y.translation.nodes.some((n) => n.op === 'Transpose')).toBe(true);
  });

  it('Reshape by the Shape -> Gather -> Unsqueeze -> Concat pattern (x.view(x.size(0), -1)): folded, with -1 for the batch (batch 3 runs)', async () => {
    const y = await run(head([
      { op: 'Shape', inputs: ['r'], outputs: ['s'] },
      { op: 'Gather', inputs: ['s', 'zero'], outputs: ['n'], attrs: { axis: 0 } },
      { op: 'Unsqueeze', inputs: ['n', 'axes0'], outputs: ['n1'] },
      { op: 'Concat', inputs: ['n1', 'minus1'], outputs: ['target'], attrs: { axis: 0 } },
      { op: 'Reshape', name: '/Reshape', inputs: ['r', 'target'], outputs: ['f'] },
    ]), x);
    expectClose(y, reference());
    expect(y.translation.nodes.filter((n) => ['Shape', 'GatherV2', 'ExpandDims', 'ConcatV2'].includes(n.op))).toEqual([]);
    expect(y.translation.nodes.find((n) => n.name === '/Reshape')!.op).toBe('Reshape');
  });

  it('Gemm with transB, alpha and beta: MatMul weight alpha B^T [in, out], BiasAdd beta C', async () => {
    const y = await run(head([{ op: 'Flatten', inputs: ['r'], outputs: ['f'] }], 0.5, 2), x);
    expectClose(y, reference(0.5, 2));
    const mm = y.translation.weightSpecs.find((s) => s.name === '/fc/Gemm/weight')!;
    expect(mm.shape).toEqual([64, 5]);
  });

  it.each([11, 13])('opset %i forms of Squeeze / Unsqueeze / Split / ReduceMean axes', async (opset) => {
    const attrAxes = opset < 13;
    const xs = tensor([2, 4, 3, 3], 15);
    const spec: ModelSpec = {
      opset,
      input: { name: 'input', dims: ['n', 4, 3, 3] },
      nodes: [
        { op: 'Split', inputs: attrAxes ? ['input'] : ['input', 'sizes'], outputs: ['a', 'b'], attrs: { axis: 1, ...(attrAxes ? { split: [1, 3] } : {}) } },
        { op: 'ReduceMean', inputs: ['b'], outputs: ['m'], attrs: { axes: [2, 3], keepdims: 0 } },
        { op: 'Unsqueeze', inputs: attrAxes ? ['m'] : ['m', 'ax23'], outputs: ['u'], ...(attrAxes ? { attrs: { axes: [2, 3] } } : {}) },
        { op: 'Mul', inputs: ['a', 'u'], outputs: ['p'] },
        { op: 'ReduceMean', inputs: ['p'], outputs: ['q'], attrs: { axes: [1], keepdims: 1 } },
        { op: 'Squeeze', inputs: attrAxes ? ['q'] : ['q', 'ax1'], outputs: ['y'], ...(attrAxes ? { attrs: { axes: [1] } } : {}) },
      ],
      inits: attrAxes ? [] : [i64('sizes', [1, 3]), i64('ax23', [2, 3]), i64('ax1', [1])],
    };
    const y = await run(spec, xs);
    // y[n, h, w] = mean_c' (x[n, 0, h, w] * mean_hw x[n, 1 + c', ., .])
    const want = new Float64Array(2 * 3 * 3 * 3);
    for (let n = 0; n < 2; n++) for (let c = 0; c < 3; c++) {
      let m = 0;
      for (let h = 0; h < 3; h++) for (let v = 0; v < 3; v++) m += at(xs, n, 1 + c, h, v) / 9;
      for (let h = 0; h < 3; h++) for (let v = 0; v < 3; v++) want[(n * 3 + c) * 9 + h * 3 + v] = at(xs, n, 0, h, v) * m;
    }
    const ref = new Float64Array(2 * 9);
    for (let n = 0; n < 2; n++) for (let i = 0; i < 9; i++) ref[n * 9 + i] = (want[(n * 3) * 9 + i] + want[(n * 3 + 1) * 9 + i] + want[(n * 3 + 2) * 9 + i]) / 3;
    expectClose(y, { data: ref, shape: [2, 3, 3] });
  });

});

describe('ONNX activations', () => {
  const x = map(tensor([2, 3, 4, 4], 21), (v) => v * 4);
  const one = (op: string, opset: number, attrs: Record<string, AttrValue> = {}, extra: string[] = [], inits: Init[] = []): ModelSpec => ({
    opset, input: { name: 'input', dims: ['n', 3, 4, 4] }, nodes: [{ op, name: `/a/${op}`, inputs: ['input', ...extra], outputs: ['y'], attrs }], inits,
  });

  it('PRelu with a [C, 1, 1] slope, LeakyRelu, HardSigmoid (torch: alpha 1/6), HardSwish, Sigmoid', async () => {
    const slope = [0.1, -0.5, 2];
    expectClose(await run(one('PRelu', 17, {}, ['slope'], [{ name: 'slope', dims: [3, 1, 1], values: slope }]), x), map(x, (v, i) => (v > 0 ? v : v * slope[Math.floor(i / 16) % 3])));
    expectClose(await run(one('LeakyRelu', 17, { alpha: f(0.2) }), x), map(x, (v) => (v > 0 ? v : 0.2 * v)));
    expectClose(await run(one('HardSigmoid', 17, { alpha: f(1 / 6), beta: f(0.5) }), x), map(x, (v) => Math.max(0, Math.min(1, v / 6 + 0.5))));
    expectClose(await run(one('HardSwish', 17), x), map(x, (v) => v * Math.max(0, Math.min(1, v / 6 + 0.5))));
    expectClose(await run(one('Sigmoid', 17), x), map(x, (v) => 1 / (1 + Math.exp(-v))));
  });

  it('Gelu (opset 20, both approximations) and the Erf / Div / Mul / Add spelling of older exports', async () => {
    const exact = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
    expectClose(await run(one('Gelu', 20), x), map(x, exact));
    expectClose(await run(one('Gelu', 20, { approximate: 'tanh' }), x), map(x, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))));
    const spelled: ModelSpec = {
      opset: 17, input: { name: 'input', dims: ['n', 3, 4, 4] },
      nodes: [
        { op: 'Div', inputs: ['input', 'sqrt2'], outputs: ['d'] },
        { op: 'Erf', inputs: ['d'], outputs: ['e'] },
        { op: 'Add', inputs: ['e', 'one'], outputs: ['a'] },
        { op: 'Mul', inputs: ['input', 'a'], outputs: ['m'] },
        { op: 'Mul', inputs: ['m', 'half'], outputs: ['y'] },
      ],
      inits: [{ name: 'sqrt2', dims: [], values: [Math.SQRT2] }, { name: 'one', dims: [], values: [1] }, { name: 'half', dims: [], values: [0.5] }],
    };
    expectClose(await run(spelled, x), map(x, exact));
  });

  it('Clip: [0, 6] is Relu6, [0, none] Relu, other bounds ClipByValue; attributes before opset 11', async () => {
    const bounds = (lo?: number, hi?: number) => [lo === undefined ? '' : 'lo', hi === undefined ? '' : 'hi'];
    const inits = (lo?: number, hi?: number): Init[] => [...(lo === undefined ? [] : [{ name: 'lo', dims: [], values: [lo] }]), ...(hi === undefined ? [] : [{ name: 'hi', dims: [], values: [hi] }])];
    const relu6 = await run(one('Clip', 13, {}, bounds(0, 6), inits(0, 6)), x);
    expectClose(relu6, map(x, (v) => Math.min(6, Math.max(0, v))));
    expect(relu6.translation.nodes.find((n) => n.name === '/a/Clip')!.op).toBe('Relu6');
    const relu = await run(one('Clip', 13, {}, bounds(0), inits(0)), x);
    expectClose(relu, map(x, (v) => Math.max(0, v)));
    expect(relu.translation.nodes.find((n) => n.name === '/a/Clip')!.op).toBe('Relu');
    expectClose(await run(one('Clip', 11, {}, bounds(undefined, 0.5), inits(undefined, 0.5)), x), map(x, (v) => Math.min(0.5, v)));
    expectClose(await run(one('Clip', 9, { min: f(-0.5), max: f(1.5) }), x), map(x, (v) => Math.min(1.5, Math.max(-0.5, v))));
  });
});

describe('ONNX channel-axis ops, batch norm, transpose and pad on NHWC tensors', () => {
  const x = tensor([2, 4, 3, 3], 31);
  const spec = (nodes: NodeSpec[], inits: Init[] = [], opset = 13): ModelSpec => ({ opset, input: { name: 'input', dims: ['n', 4, 3, 3] }, nodes, inits });
  /** x with its channels reordered / picked per `channels`. */
  const pick = (t: T, channels: number[]): T => {
    const [N, , H, W] = t.shape;
    const out = new Float64Array(N * channels.length * H * W);
    for (let n = 0; n < N; n++) channels.forEach((c, k) => { for (let i = 0; i < H * W; i++) out[(n * channels.length + k) * H * W + i] = t.data[(n * t.shape[1] + c) * H * W + i]; });
    return { data: out, shape: [N, channels.length, H, W] };
  };

  it('Split, Slice and Concat on the channel axis (axis 1 is the NHWC channel axis)', async () => {
    const y = await run(spec([
      { op: 'Split', inputs: ['input', 'sizes'], outputs: ['a', 'b'], attrs: { axis: 1 } },
      { op: 'Slice', inputs: ['b', 'starts', 'ends', 'axes'], outputs: ['s'] },
      { op: 'Concat', name: 'cat', inputs: ['s', 'a', 'input'], outputs: ['y'], attrs: { axis: 1 } },
    ], [i64('sizes', [1, 3]), i64('starts', [2]), i64('ends', [9]), i64('axes', [1])]), x);
    // b = channels 1..3; s = b[:, 2:] = channel 3; y = [3, 0, 0, 1, 2, 3]
    expectClose(y, pick(x, [3, 0, 0, 1, 2, 3]));
    expect(y.translation.nodes.find((n) => n.name === 'cat')!.op).toBe('ConcatV2');
  });

  it('strided Slice over H and a negative start', async () => {
    const y = await run(spec([{ op: 'Slice', inputs: ['input', 'starts', 'ends', 'axes', 'steps'], outputs: ['y'] }], [i64('starts', [0, -2]), i64('ends', [3, 3]), i64('axes', [2, 3]), i64('steps', [2, 1])]), x);
    const want: number[] = [];
    for (let n = 0; n < 2; n++) for (let c = 0; c < 4; c++) for (const h of [0, 2]) for (const w of [1, 2]) want.push(at(x, n, c, h, w));
    expectClose(y, { data: Float64Array.from(want), shape: [2, 4, 2, 2] });
  });

  it('BatchNormalization (epsilon) and Transpose to NHWC (one composed permutation)', async () => {
    const [scale, bias, mean, variance] = [[1, 2, 0.5, -1], [0.1, 0.2, 0.3, 0.4], [0.5, -0.5, 0, 1], [1, 0.25, 4, 2]];
    const y = await run(spec([
      { op: 'BatchNormalization', inputs: ['input', 'scale', 'bias', 'mean', 'var'], outputs: ['b'], attrs: { epsilon: f(1e-3) } },
      { op: 'Transpose', inputs: ['b'], outputs: ['y'], attrs: { perm: [0, 2, 3, 1] } },
    ], [['scale', scale], ['bias', bias], ['mean', mean], ['var', variance]].map(([name, values]) => ({ name: name as string, dims: [4], values: values as number[] }))), x);
    const want = new Float64Array(2 * 3 * 3 * 4);
    for (let n = 0; n < 2; n++) for (let c = 0; c < 4; c++) for (let h = 0; h < 3; h++) for (let w = 0; w < 3; w++) {
      want[((n * 3 + h) * 3 + w) * 4 + c] = (at(x, n, c, h, w) - mean[c]) / Math.sqrt(variance[c] + 1e-3) * scale[c] + bias[c];
    }
    expectClose(y, { data: want, shape: [2, 3, 3, 4] });
    // the graph already holds NHWC: the ONNX transpose needs no node
    expect(y.translation.nodes.filter((n) => n.op === 'Transpose')).toEqual([]);
  });

  it('Pad (opset 13 input form, asymmetric, constant value) reordered to NHWC', async () => {
    const y = await run(spec([{ op: 'Pad', inputs: ['input', 'pads', 'value'], outputs: ['y'] }], [i64('pads', [0, 0, 1, 0, 0, 0, 2, 1]), { name: 'value', dims: [], values: [0.5] }]), x);
    const want = new Float64Array(2 * 4 * 6 * 4).fill(0.5);
    for (let n = 0; n < 2; n++) for (let c = 0; c < 4; c++) for (let h = 0; h < 3; h++) for (let w = 0; w < 3; w++) want[((n * 4 + c) * 6 + h + 1) * 4 + w] = at(x, n, c, h, w);
    expectClose(y, { data: want, shape: [2, 4, 6, 4] });
  });
});

describe('ONNX models refused, with the reason', () => {
  it('every unsupported node in one line naming op, node and opset', async () => {
    const err = await translate({
      opset: 17,
      nodes: [
        { op: 'Resize', name: '/up/Resize', inputs: ['input'], outputs: ['r'] },
        { op: 'MaxPool', name: '/pool/MaxPool', inputs: ['r'], outputs: ['p'], attrs: { kernel_shape: [2, 2], dilations: [2, 2] } },
        { op: 'Foo', name: '/custom/Foo', domain: 'com.example', inputs: ['p'], outputs: ['y'] },
      ],
    }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConvlensError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    expect(msg).toMatch(/^the ONNX model test\.onnx \(opset 17\) has 3 nodes convlens cannot translate: /);
    expect(msg).toContain('"/up/Resize" (Resize)');
    expect(msg).toContain('"/pool/MaxPool" (MaxPool with dilations=[2, 2]');
    expect(msg).toContain('"/custom/Foo" (com.example::Foo: domain com.example)');
    expect((err as ConvlensError).hint).toMatch(/Conv, .*Gemm/);
  });

  it('a symbolic image size, and a node error naming the node', async () => {
    const sym = await translate({ opset: 17, input: { name: 'input', dims: ['batch', 3, 'height', 'width'] }, nodes: [{ op: 'Relu', inputs: ['input'], outputs: ['y'] }] }).then(() => undefined, (e: unknown) => e);
    expect((sym as Error).message).toBe('the ONNX model input "input" has shape [batch, 3, height, width]; convlens needs a fixed image size [batch, channels, height, width]');
    expect((sym as ConvlensError).hint).toMatch(/fixed image size: dynamic axes for the batch only/);
    const soft = await translate({ opset: 13, nodes: [{ op: 'Softmax', name: 'sm', inputs: ['input'], outputs: ['y'], attrs: { axis: 2 } }] }).then(() => undefined, (e: unknown) => e);
    expect((soft as Error).message).toMatch(/^ONNX node "sm" \(Softmax, opset 13\) takes the Softmax over axis 2/);
  });
});

describe('ONNX files: external data, aliases, the weights hash, the CAM head', () => {
  const dir = mkdtempSync(join(tmpdir(), 'convlens-onnx-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const w = tensor([4, 3, 3, 3], 41);
  const fc = tensor([3, 4], 42);
  /** conv -> relu -> GAP -> flatten -> Gemm(transB) -> softmax, weights in weights.bin beside the model. */
  const spec = (fcValues = Array.from(fc.data)): ModelSpec => ({
    opset: 17,
    external: 'weights.bin',
    output: 'probs',
    nodes: [
      { op: 'Conv', name: '/conv/Conv', inputs: ['input', 'W', 'B'], outputs: ['conv_out'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
      { op: 'Relu', name: '/relu/Relu', inputs: ['conv_out'], outputs: ['relu_out'] },
      { op: 'GlobalAveragePool', name: '/gap/GlobalAveragePool', inputs: ['relu_out'], outputs: ['gap_out'] },
      { op: 'Flatten', name: '/Flatten', inputs: ['gap_out'], outputs: ['flat'] },
      { op: 'Gemm', name: '/fc/Gemm', inputs: ['flat', 'fc.weight', 'fc.bias'], outputs: ['logits'], attrs: { transB: 1 } },
      { op: 'Softmax', name: '/Softmax', inputs: ['logits'], outputs: ['probs'], attrs: { axis: 1 } },
    ],
    inits: [init('W', w), { name: 'B', dims: [4], values: [0.1, -0.1, 0.2, 0] }, { name: 'fc.weight', dims: [3, 4], values: fcValues }, { name: 'fc.bias', dims: [3], values: [1, 2, 3] }],
  });
  const write = (sub: string, s: ModelSpec) => {
    const { bytes, external } = buildModel(s);
    const folder = join(dir, sub);
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(folder);
    writeFileSync(join(folder, 'model.onnx'), bytes);
    if (external) writeFileSync(join(folder, 'weights.bin'), external);
    return folder;
  };

  it('loads a folder with a .onnx file and its external data; softmax head, aliases, CAM gap+dense, hash per weight', async () => {
    const a = write('a', spec());
    const loaded = await loadModel(a);
    expect(loaded.format).toBe('onnx');
    expect(loaded.location).toBe(join(a, 'model.onnx'));
    const m = loaded.adapter;
    expect(m.head).toEqual({ kind: 'softmax', activation: 'softmax', units: 3 });
    expect(m.inputShape).toEqual([6, 6, 3]);
    expect(m.countParams()).toBe(4 * 27 + 4 + 12 + 3);
    // logits by hand: fc(mean_hw relu(conv(x))) + b
    const x = tensor([2, 3, 6, 6], 43);
    const r = map(conv(x, w, [0.1, -0.1, 0.2, 0], { pads: [1, 1, 1, 1] }), (v) => Math.max(0, v));
    const want = new Float64Array(6);
    for (let n = 0; n < 2; n++) for (let k = 0; k < 3; k++) {
      let s = [1, 2, 3][k];
      for (let c = 0; c < 4; c++) {
        let mean = 0;
        for (let i = 0; i < 36; i++) mean += r.data[(n * 4 + c) * 36 + i] / 36;
        s += mean * fc.data[k * 4 + c];
      }
      want[n * 3 + k] = s;
    }
    const xin = tf.transpose(tf.tensor4d(Float32Array.from(x.data), [2, 3, 6, 6]), [0, 2, 3, 1]) as tf.Tensor4D;
    const { logits, activations } = m.forward(xin, ['relu_out', '/relu/Relu']);
    expectClose({ data: logits.dataSync(), shape: logits.shape }, { data: want, shape: [2, 3] });
    // an ONNX tensor name and the node name give the same activation
    expect(activations.get('relu_out')!.shape).toEqual([2, 6, 6, 4]);
    expect(Array.from(activations.get('relu_out')!.dataSync())).toEqual(Array.from(activations.get('/relu/Relu')!.dataSync()));
    expect(m.layer('conv_out').name).toBe('/conv/Conv');
    const cam = findCamHead(m);
    expect(cam.ok && cam.head.kind).toBe('gap+dense');
    if (cam.ok && cam.head.kind === 'gap+dense') {
      expect(cam.head.mapLayer).toBe('/relu/Relu');
      expect(cam.head.kernel.shape).toEqual([4, 3]);
    }
    tf.dispose([xin, logits, ...activations.values()]);
    m.dispose();

    const same = await loadModel(write('b', spec()));
    const changed = await loadModel(write('c', spec(Array.from(fc.data, (v, i) => (i === 5 ? v + 1e-3 : v)))));
    expect(same.weightsSha256).toBe(loaded.weightsSha256);
    expect(changed.weightsSha256).not.toBe(loaded.weightsSha256);
    same.adapter.dispose();
    changed.adapter.dispose();
  });

  it('a missing external-data file is named', async () => {
    const folder = write('d', spec());
    rmSync(join(folder, 'weights.bin'));
    const err = await loadModel(folder).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConvlensError);
    expect((err as Error).message).toMatch(/weights\.bin.*ENOENT/);
  });
});

