/**
 * Receptive fields (pipeline/receptive-field.ts) against brute force: on tiny models with
 * all-positive weights and inputs (no ReLU ever at zero, every max-pool window can be won), each
 * input pixel in turn is raised by a large amount in a batch of one image per pixel; the pixels
 * that move the activation of a unit are its field. Every unit of the layer is compared,
 * borders included. Also: the closed form (jump, start, size) against hand-derived values and
 * against the unclipped field, and the pooling/padding geometry the adapters now report.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { type Box, receptiveField } from '../../pipeline/receptive-field.ts';

let tmp: string;
beforeAll(async () => {
  tf.enableProdMode();
  await initBackend('wasm', silentLogger);
  tmp = await mkdtemp(join(tmpdir(), 'convlens-rf-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let seed = 1;
const positive = () => tf.initializers.randomUniform({ minval: 0.5, maxval: 1, seed: seed++ });
const conv = (name: string, o: { k: number; s?: number; d?: number; padding?: 'same' | 'valid'; filters?: number }) => tf.layers.conv2d({
  name, filters: o.filters ?? 2, kernelSize: o.k, strides: o.s ?? 1, dilationRate: o.d ?? 1, padding: o.padding ?? 'valid',
  activation: 'relu', kernelInitializer: positive(), biasInitializer: 'zeros',
});
const sym = (l: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => l.apply(x) as tf.SymbolicTensor;

/** input -> body -> GAP -> dense(2): a classifier the adapter accepts. */
function classifier(shape: [number, number, number], body: (x: tf.SymbolicTensor) => tf.SymbolicTensor): LayersAdapter {
  const input = tf.input({ shape, name: 'img' });
  const gap = sym(tf.layers.globalAveragePooling2d({ name: 'gap' }), body(input));
  const out = sym(tf.layers.dense({ units: 2, name: 'out', kernelInitializer: positive() }), gap);
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

const EMPTY: Box = { top: 0, left: 0, height: 0, width: 0 };

/**
 * Brute force: image 0 is the base (values in [0.5, 1]); image 1 + p has pixel p raised by 1e4
 * in every channel. A unit's field is the bounding box of the pixels that change any of its
 * channels (the field of the layer's node: after a concatenation one channel can see less);
 * `count` is how many pixels do.
 */
function bruteForce(model: ModelAdapter, layer: string) {
  const [H, W, C] = model.inputShape;
  const n = H * W;
  const base = Float32Array.from({ length: n * C }, (_, i) => 0.5 + 0.5 * (((i * 7919) % 97) / 97));
  const data = new Float32Array((n + 1) * n * C);
  for (let b = 0; b <= n; b++) {
    data.set(base, b * n * C);
    if (b > 0) for (let c = 0; c < C; c++) data[b * n * C + (b - 1) * C + c] += 1e4;
  }
  const x = tf.tensor4d(data, [n + 1, H, W, C]);
  const { logits, activations } = model.forward(x, [layer]);
  const act = activations.get(layer)!;
  const [, h, w, k] = act.shape;
  const v = act.dataSync();
  tf.dispose([x, logits, act]);
  const at = (b: number, y: number, xx: number, c: number) => v[((b * h + y) * w + xx) * k + c];
  const moves = (p: number, y: number, xx: number) => Array.from({ length: k }, (_, c) => c)
    .some((c) => Math.abs(at(p + 1, y, xx, c) - at(0, y, xx, c)) > 1e-3 * (1 + Math.abs(at(0, y, xx, c))));
  const result = (y: number, xx: number) => {
    let top = Infinity, left = Infinity, bottom = -1, right = -1, count = 0;
    for (let p = 0; p < n; p++) {
      if (!moves(p, y, xx)) continue;
      const py = Math.floor(p / W);
      const px = p % W;
      top = Math.min(top, py); bottom = Math.max(bottom, py); left = Math.min(left, px); right = Math.max(right, px);
      count++;
    }
    const box: Box = count ? { top, left, height: bottom - top + 1, width: right - left + 1 } : EMPTY;
    return { box, count };
  };
  return { h, w, result };
}

/** Compares every unit of `layer`; `dense`: the field is a full box (no dilation holes). */
function expectExact(model: ModelAdapter, layer: string, dense: boolean) {
  const rf = receptiveField(model, layer);
  const bf = bruteForce(model, layer);
  expect(rf.mapSize).toEqual([bf.h, bf.w]);
  let clippedUnits = 0;
  for (let y = 0; y < bf.h; y++) {
    for (let x = 0; x < bf.w; x++) {
      const { box, count } = bf.result(y, x);
      expect(rf.box(y, x), `${layer} unit (${y}, ${x})`).toEqual(box);
      if (dense) expect(count, `${layer} unit (${y}, ${x}) is a full box`).toBe(box.height * box.width);
      const full = rf.full(y, x);
      // the exact box lies inside the unclipped field (a unit in a padded border has none)
      if (count) expect(box.top >= full.top && box.left >= full.left && box.top + box.height <= full.top + full.height && box.left + box.width <= full.left + full.width).toBe(true);
      if (full.height !== box.height || full.width !== box.width) clippedUnits++;
    }
  }
  return { rf, clippedUnits };
}

/** The unclipped field of every unit equals the closed form start + u * jump, size. */
function expectAffine(model: ModelAdapter, layer: string) {
  const rf = receptiveField(model, layer);
  const [ay, ax] = rf.affine;
  expect(ay).not.toBeNull();
  expect(ax).not.toBeNull();
  for (let y = 0; y < rf.mapSize[0]; y++) {
    for (let x = 0; x < rf.mapSize[1]; x++) {
      expect(rf.full(y, x)).toEqual({ top: ay!.start + y * ay!.jump, left: ax!.start + x * ax!.jump, height: ay!.size, width: ax!.size });
    }
  }
  return rf;
}

describe('receptive fields vs brute force (LayersModel)', () => {
  it('chain: valid conv, same conv with stride 2 (odd sizes: asymmetric padding), max pool, avg pool same', () => {
    const model = classifier([13, 11, 1], (x) => {
      let h = sym(conv('v3', { k: 3 }), x); // 11x9
      h = sym(conv('s2', { k: 3, s: 2, padding: 'same' }), h); // 6x5, pad_begin 1 (rows), 1 (cols)
      h = sym(tf.layers.maxPooling2d({ name: 'mp', poolSize: 2, strides: 2 }), h); // 3x2
      return sym(tf.layers.averagePooling2d({ name: 'ap', poolSize: 3, strides: 2, padding: 'same' }), sym(conv('c', { k: 2, padding: 'same' }), h));
    });
    for (const layer of ['v3', 's2', 'mp', 'c', 'ap']) {
      const { clippedUnits } = expectExact(model, layer, true);
      if (layer !== 'v3') expect(clippedUnits, `${layer} has border units`).toBeGreaterThan(0);
      expectAffine(model, layer);
    }
    // hand: v3: jump 1, size 3, start 0; s2 (in 11: out 6, total (5*2+3-11)=2, pad_begin 1): jump 2, size 3+2*1=5, start 0-1*1=-1
    // mp: jump 4, size 5+1*2=7, start -1; c (2x2 same on 3: total 1, pad_begin 0): jump 4, size 11, start -1
    expect(receptiveField(model, 's2').affine[0]).toEqual({ jump: 2, start: -1, size: 5 });
    expect(receptiveField(model, 'mp').affine[0]).toEqual({ jump: 4, start: -1, size: 7 });
    expect(receptiveField(model, 'c').affine[0]).toEqual({ jump: 4, start: -1, size: 11 });
    model.dispose();
  });

  it('even input, same conv stride 2 (pad_begin 0), then a layer that never reads the last rows: clipping at every layer', () => {
    const model = classifier([8, 7, 1], (x) => {
      const a = sym(conv('p1', { k: 1, s: 3 }), x); // rows 0,3,6 of 8; cols 0,3,6 of 7
      return sym(conv('q', { k: 3, padding: 'same' }), a); // 3x3
    });
    const { rf } = expectExact(model, 'q', false);
    // last row unit reads p1 rows 1..2 (3 is padding) -> image rows 3..6, not up to 7 (clipping only at the image would say 7)
    expect(rf.box(2, 2)).toEqual({ top: 3, left: 3, height: 4, width: 4 });
    expect(rf.full(2, 2)).toEqual({ top: 3, left: 3, height: 7, width: 7 });
    const even = classifier([8, 8, 1], (x) => sym(conv('e', { k: 3, s: 2, padding: 'same' }), x));
    // in 8, out 4: total max(3*2+3-8, 0) = 1, pad_begin 0 (TensorFlow puts the extra row at the end)
    expect(receptiveField(even, 'e').affine[0]).toEqual({ jump: 2, start: 0, size: 3 });
    expectExact(even, 'e', true);
    model.dispose();
    even.dispose();
  });

  it('dilation 2 and 3: holes, borders exact', () => {
    const model = classifier([12, 12, 1], (x) => {
      const a = sym(conv('d2', { k: 3, d: 2, padding: 'same' }), x);
      return sym(conv('d3', { k: 3, d: 3 }), a);
    });
    expectExact(model, 'd2', false);
    const { rf } = expectExact(model, 'd3', false);
    expect(rf.affine[1]).toEqual({ jump: 1, start: -2, size: 5 + 2 * 3 });
    // d2 unit 0 reads -2 (padding), 0, 2: the box starts at 0, not at -2 or -1
    expect(receptiveField(model, 'd2').box(0, 0)).toEqual({ top: 0, left: 0, height: 3, width: 3 });
    expect(bruteForce(model, 'd2').result(0, 0).count).toBe(4);
    model.dispose();
  });

  it('ZeroPadding2D, Cropping2D and a ResNet-style stem (pad 3, 7x7/2 valid, pad 1, 3x3/2 max pool)', () => {
    const model = classifier([15, 13, 1], (x) => {
      let h = sym(tf.layers.zeroPadding2d({ name: 'pad3', padding: [[3, 2], [1, 0]] }), x); // 20x14
      h = sym(conv('c7', { k: 7, s: 2 }), h); // 7x4
      h = sym(tf.layers.zeroPadding2d({ name: 'pad1', padding: 1 }), h); // 9x6
      h = sym(tf.layers.maxPooling2d({ name: 'pool', poolSize: 3, strides: 2 }), h); // 4x2
      h = sym(tf.layers.cropping2D({ name: 'crop', cropping: [[1, 0], [0, 1]] }), h); // 3x1
      return sym(conv('head', { k: 3, padding: 'same' }), h);
    });
    expect(model.layer('pad3').pad).toEqual([3, 2, 1, 0]);
    expect(model.layer('crop').pad).toEqual([-1, 0, 0, -1]);
    expect(model.layer('pool').pool).toEqual({ kernel: [3, 3], strides: [2, 2], padding: 'valid', dilation: [1, 1] });
    for (const layer of ['c7', 'pool', 'crop', 'head']) {
      expectExact(model, layer, true);
      expectAffine(model, layer);
    }
    // c7: jump 2, size 7, start -3 (rows) / -1 (cols); pool: start -3 - 1*2 = -5, size 7 + 2*2 = 11, jump 4
    expect(receptiveField(model, 'pool').affine).toEqual([{ jump: 4, start: -5, size: 11 }, { jump: 4, start: -3, size: 11 }]);
    // crop removes the first row: start -5 + 4
    expect(receptiveField(model, 'crop').affine[0]).toEqual({ jump: 4, start: -1, size: 11 });
    model.dispose();
  });

  it('a DAG: two branches of different fields meet in add and concatenate; the field is their union', () => {
    const model = classifier([12, 10, 1], (x) => {
      const c0 = sym(conv('c0', { k: 3, padding: 'same' }), x);
      const a = sym(conv('a', { k: 1 }), c0);
      const b = sym(conv('b2', { k: 5, padding: 'same' }), sym(conv('b1', { k: 3, padding: 'same' }), c0));
      const add = sym(tf.layers.add({ name: 'add' }), [a, b]);
      // rows shifted by padding + cropping: "up" reads row u - 2, "down" row u + 2; neither field holds the other
      const up = sym(tf.layers.cropping2D({ name: 'up-crop', cropping: [[0, 2], [0, 0]] }), sym(tf.layers.zeroPadding2d({ name: 'up-pad', padding: [[2, 0], [0, 0]] }), add));
      const down = sym(tf.layers.zeroPadding2d({ name: 'down-pad', padding: [[0, 2], [0, 0]] }), sym(tf.layers.cropping2D({ name: 'down-crop', cropping: [[2, 0], [0, 0]] }), add));
      const sh = sym(tf.layers.add({ name: 'shift' }), [up, down]);
      // stride-2 branches with the same jump but different offsets: a 1x1/2 conv and a 3x3/2 max pool + 3x3 conv
      const s1 = sym(conv('s1', { k: 1, s: 2, padding: 'same' }), sh);
      const s2 = sym(conv('s2b', { k: 3, padding: 'same' }), sym(tf.layers.maxPooling2d({ name: 'mp', poolSize: 3, strides: 2, padding: 'same' }), sh));
      return sym(tf.layers.concatenate({ name: 'cat' }), [s1, s2]);
    });
    expect(model.layer('add').inputs).toEqual(['a', 'b2']);
    for (const layer of ['add', 'up-pad', 'shift', 'cat']) {
      const { rf } = expectExact(model, layer, true);
      expectAffine(model, layer);
      expect(rf.broadcast).toEqual([]);
    }
    // add: branch a size 3, branch b 3+2+4 = 9 -> union 9, start -4
    expect(receptiveField(model, 'add').affine[0]).toEqual({ jump: 1, start: -4, size: 9 });
    expect(receptiveField(model, 'a').affine[0]).toEqual({ jump: 1, start: -1, size: 3 });
    // shift: [u - 2 - 4, u - 2 + 4] and [u + 2 - 4, u + 2 + 4] -> [u - 6, u + 6]; columns as in add
    expect(receptiveField(model, 'shift').affine).toEqual([{ jump: 1, start: -6, size: 13 }, { jump: 1, start: -4, size: 9 }]);
    expect(receptiveField(model, 'shift').box(0, 0)).toEqual({ top: 0, left: 0, height: 7, width: 5 });
    model.dispose();
  });

  it('leaves out broadcast inputs (a squeeze-excitation gate) and names them', () => {
    const model = classifier([8, 8, 1], (x) => {
      const c = sym(conv('c', { k: 3, padding: 'same' }), x);
      const gate = sym(tf.layers.reshape({ name: 'gate', targetShape: [1, 1, 2] }), sym(tf.layers.dense({ name: 'fc', units: 2, activation: 'sigmoid' }), sym(tf.layers.globalAveragePooling2d({ name: 'sq' }), c)));
      return sym(tf.layers.multiply({ name: 'se' }), [c, gate]);
    });
    const rf = receptiveField(model, 'se');
    expect(rf.broadcast).toEqual(['gate']);
    expect(rf.box(0, 0)).toEqual(receptiveField(model, 'c').box(0, 0));
    expect(rf.affine[0]).toEqual({ jump: 1, start: -1, size: 3 });
    model.dispose();
  });

  it('refuses layers it cannot map, and non-spatial layers', () => {
    const model = classifier([6, 6, 1], (x) => sym(conv('after', { k: 3, padding: 'same' }), sym(tf.layers.upSampling2d({ name: 'up', size: [2, 2] }), sym(conv('c', { k: 3 }), x))));
    expect(() => receptiveField(model, 'after')).toThrow(ConvlensError);
    expect(() => receptiveField(model, 'after')).toThrow(/through layer "up" \(UpSampling2D\): it maps 4x4 to 8x8/);
    expect(() => receptiveField(model, 'gap')).toThrow(/needs a spatial layer/);
    expect(receptiveField(model, 'c').box(1, 1)).toEqual({ top: 1, left: 1, height: 3, width: 3 });
    model.dispose();
  });
});

// ---- a hand-written GraphModel: Pad, Conv2D SAME stride 2, MaxPool, AvgPool ----

const b64 = (s: string) => Buffer.from(s).toString('base64');
const dims = (shape: number[]) => ({ dim: shape.map((d) => ({ size: String(d) })) });
const ints = (v: number[]) => ({ list: { i: v.map(String) } });
const constNode = (name: string, dtype: 'DT_FLOAT' | 'DT_INT32', shape: number[]) => ({
  name, op: 'Const', attr: { value: { tensor: { dtype, tensorShape: dims(shape) } }, dtype: { type: dtype } },
});

/**
 * x [-1,9,10,1] -> pad [[1,2],[2,1]] -> conv 3x3/2 SAME -> relu -> maxpool 3/2 VALID -> avgpool 2/1 SAME
 * -> scaled = avgpool * gmean (gmean: Mean over [1, 2] with keep_dims, [n,1,1,2]) -> mean -> matmul.
 */
async function writePoolGraph(dir: string) {
  const float = { type: 'DT_FLOAT' };
  const NHWC = { s: b64('NHWC') };
  const node = [
    { name: 'x', op: 'Placeholder', attr: { dtype: float, shape: { shape: dims([-1, 9, 10, 1]) } } },
    constNode('pad/paddings', 'DT_INT32', [4, 2]),
    constNode('conv/filter', 'DT_FLOAT', [3, 3, 1, 2]),
    constNode('mean/axes', 'DT_INT32', [2]),
    constNode('dense/kernel', 'DT_FLOAT', [2, 3]),
    { name: 'pad', op: 'Pad', input: ['x', 'pad/paddings'], attr: { T: float, Tpaddings: { type: 'DT_INT32' } } },
    { name: 'conv', op: 'Conv2D', input: ['pad', 'conv/filter'], attr: { T: float, strides: ints([1, 2, 2, 1]), padding: { s: b64('SAME') }, data_format: NHWC, dilations: ints([1, 1, 1, 1]) } },
    { name: 'relu', op: 'Relu', input: ['conv'], attr: { T: float } },
    { name: 'maxpool', op: 'MaxPool', input: ['relu'], attr: { T: float, ksize: ints([1, 3, 3, 1]), strides: ints([1, 2, 2, 1]), padding: { s: b64('VALID') }, data_format: NHWC } },
    { name: 'avgpool', op: 'AvgPool', input: ['maxpool'], attr: { T: float, ksize: ints([1, 2, 2, 1]), strides: ints([1, 1, 1, 1]), padding: { s: b64('SAME') }, data_format: NHWC } },
    { name: 'gmean', op: 'Mean', input: ['avgpool', 'mean/axes'], attr: { T: float, Tidx: { type: 'DT_INT32' }, keep_dims: { b: true } } },
    { name: 'scaled', op: 'Mul', input: ['avgpool', 'gmean'], attr: { T: float } },
    { name: 'mean', op: 'Mean', input: ['scaled', 'mean/axes'], attr: { T: float, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } } },
    { name: 'logits', op: 'MatMul', input: ['mean', 'dense/kernel'], attr: { T: float, transpose_a: { b: false }, transpose_b: { b: false } } },
  ];
  const modelJson = {
    format: 'graph-model', generatedBy: '2.15.0', convertedBy: 'TensorFlow.js Converter v4.22.0',
    modelTopology: { node, library: {}, versions: { producer: 1645 } },
    weightsManifest: [{
      paths: ['weights.bin'],
      weights: [
        { name: 'pad/paddings', shape: [4, 2], dtype: 'int32' },
        { name: 'conv/filter', shape: [3, 3, 1, 2], dtype: 'float32' },
        { name: 'mean/axes', shape: [2], dtype: 'int32' },
        { name: 'dense/kernel', shape: [2, 3], dtype: 'float32' },
      ],
    }],
  };
  const parts = [
    new Int32Array([0, 0, 1, 2, 2, 1, 0, 0]),
    Float32Array.from({ length: 18 }, (_, i) => 0.5 + (i % 5) / 10),
    new Int32Array([1, 2]),
    new Float32Array([1, -1, 0.5, 0.25, 2, -0.5]),
  ];
  await writeFile(join(dir, 'weights.bin'), Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))));
  await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
}

describe('receptive fields vs brute force (GraphModel)', () => {
  it('reads MaxPool / AvgPool ksize and strides and Pad paddings, and the fields are exact', async () => {
    const dir = await mkdtemp(join(tmp, 'graph-'));
    await writePoolGraph(dir);
    const { adapter } = await loadModel(dir);
    expect(adapter.layer('maxpool').pool).toEqual({ kernel: [3, 3], strides: [2, 2], padding: 'valid', dilation: [1, 1] });
    expect(adapter.layer('avgpool').pool).toEqual({ kernel: [2, 2], strides: [1, 1], padding: 'same', dilation: [1, 1] });
    expect(adapter.layer('pad').pad).toEqual([1, 2, 2, 1]);
    expect(adapter.layer('conv').pool).toBeUndefined();
    expect(adapter.layer('pad').outputShape).toEqual([null, 12, 13, 1]);
    for (const layer of ['pad', 'conv', 'maxpool', 'avgpool']) {
      expectExact(adapter, layer, true);
      expectAffine(adapter, layer);
    }
    // pad: start -1 (rows); conv on 12 (SAME /2: out 6, total 1, pad_begin 0): jump 2, size 3, start -1;
    // maxpool 3/2: jump 4, size 7, start -1; avgpool 2/1 SAME on 2 (total 1, pad_begin 0): size 11
    expect(receptiveField(adapter, 'avgpool').affine[0]).toEqual({ jump: 4, start: -1, size: 11 });
    // a global mean kept as a 1x1 map sees every unit of its input; broadcast back, it is left out
    expect(adapter.layer('gmean').outputShape).toEqual([null, 1, 1, 2]);
    const { rf: global } = expectExact(adapter, 'gmean', false);
    expect(global.box(0, 0)).toEqual({ top: 0, left: 0, height: 9, width: 10 });
    // rows: avgpool units 0..1 (jump 4, size 11, start -1); columns: units 0..2, start -3 (conv on 13: pad_begin 1)
    expect(global.full(0, 0)).toEqual({ top: -1, left: -3, height: 4 + 11, width: 8 + 11 });
    const scaled = receptiveField(adapter, 'scaled');
    expect(scaled.broadcast).toEqual(['gmean']);
    expect(scaled.box(1, 2)).toEqual(receptiveField(adapter, 'avgpool').box(1, 2));
    adapter.dispose();
  });
});
