/**
 * GraphAdapter on a hand-written GraphModel (GraphDef JSON + weights.bin in a temp dir, loaded
 * through loadModel): layers, params, logits with the Softmax split off, gradients against finite
 * differences, ReLU rules, micro-batching, leaks. And loading a LayersModel over http.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { classScore, initialWeight, weightSeed, type ModelAdapter, type Objective } from '../../pipeline/model/adapter.ts';
import { graphInitialWeight, graphRole, topologicalOps } from '../../pipeline/model/graph-adapter.ts';
import { saveLayersModel } from '../../pipeline/model/io.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { RELU_RULES, withReluRule, type ReluRule } from '../../pipeline/model/relu-rules.ts';
import { centralDiff, maxAbsDiff, maxRelErr, sameSigns } from '../helpers/finite-diff.ts';
import {
  buildDag, graph64, graphWeights, oneHotRows, read64, score64, softmax64, t64, vals, writeTinyGraphModel,
} from '../helpers/tiny-models.ts';

let tmp: string;

beforeAll(async () => {
  tf.enableProdMode();
  await initBackend('wasm', silentLogger);
  tmp = await mkdtemp(join(tmpdir(), 'convlens-graph-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const N = 2;
const xShape: [number, number, number, number] = [N, 4, 4, 1];
const xVals = vals(N * 16, 7, 1);
const EPS = 1e-2;
const TOL = 2e-3;

describe('GraphAdapter on a hand-written graph model', () => {
  const w = graphWeights();
  let adapter: ModelAdapter;
  let x: tf.Tensor4D;
  let ref: ReturnType<typeof graph64>;

  beforeAll(async () => {
    const dir = join(tmp, 'graph');
    await mkdir(dir);
    await writeTinyGraphModel(dir, w);
    const loaded = await loadModel(dir);
    expect(loaded.format).toBe('graph-model');
    expect(loaded.location).toBe(join(dir, 'model.json'));
    adapter = loaded.adapter;
    x = tf.tensor4d(xVals, xShape);
    ref = graph64(w, t64(xVals, xShape));
  });
  afterAll(() => {
    x.dispose();
    adapter.dispose();
  });

  it('lists the op nodes as layers with types, shapes, float-weight params and inputs', () => {
    expect(adapter.format).toBe('graph-model');
    expect(adapter.inputShape).toEqual([4, 4, 1]);
    expect(adapter.numClasses).toBe(3);
    expect(adapter.layers.map((l) => l.name)).toEqual(['conv', 'bias_add', 'relu', 'mean', 'logits', 'probs']);
    expect(adapter.layers.map((l) => l.type)).toEqual(['Conv2D', 'BiasAdd', 'Relu', 'Mean', 'MatMul', 'Softmax']);
    expect(adapter.layers.map((l) => l.role)).toEqual(['convolution', 'bias', 'activation', 'average-pooling', 'dense', 'activation']);
    expect(adapter.layers.map((l) => l.outputShape)).toEqual([[null, 3, 3, 2], [null, 3, 3, 2], [null, 3, 3, 2], [null, 2], [null, 3], [null, 3]]);
    // the int32 Const holding Mean's axes is not a parameter
    expect(adapter.layers.map((l) => l.params)).toEqual([8, 2, 0, 0, 6, 0]);
    expect(adapter.countParams()).toBe(16);
    expect(adapter.layers.map((l) => l.inputs)).toEqual([['x'], ['conv'], ['bias_add'], ['relu'], ['mean'], ['logits']]);
    expect(adapter.layer('conv').conv).toEqual({ kernel: [2, 2], strides: [1, 1], padding: 'valid', dilation: [1, 1] });
    expect(adapter.firstConvLayer()?.name).toBe('conv');
    expect(adapter.lastSpatialLayer().name).toBe('relu');
    const [filter] = adapter.weights('conv');
    expect(filter.shape).toEqual([2, 2, 1, 2]);
    expect(Array.from(filter.dataSync())).toEqual(w.filter);
  });

  it('unknown node names throw with the nearest names', () => {
    expect(() => adapter.layer('reluu')).toThrow(ConvlensError);
    expect(() => adapter.layer('reluu')).toThrow('no layer "reluu"; nearest: relu, mean, conv');
    expect(() => adapter.forward(x, ['Relu_9'])).toThrow(/no layer "Relu_9"; nearest: relu/);
  });

  it('gives the MatMul output as logits (the Softmax split off) and named node values, by hand', () => {
    const { logits, activations } = adapter.forward(x, ['relu', 'conv', 'probs']);
    expect(logits.shape).toEqual([N, 3]);
    expect(maxAbsDiff(read64(logits), ref.logits.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(read64(logits), softmax64(ref.logits).data)).toBeGreaterThan(0.1);
    expect(maxAbsDiff(read64(activations.get('relu')!), ref.a.data)).toBeLessThan(1e-6);
    // conv is before the BiasAdd: z minus the bias
    const conv = read64(activations.get('conv')!);
    expect(maxAbsDiff(conv, ref.z.data.map((v, i) => v - w.bias[i % 2]))).toBeLessThan(1e-6);
    expect(maxAbsDiff(read64(activations.get('probs')!), softmax64(ref.logits).data)).toBeLessThan(1e-6);
    const p = adapter.probabilities(x);
    expect(maxAbsDiff(read64(p), softmax64(ref.logits).data)).toBeLessThan(1e-6);
    tf.dispose([logits, p, ...activations.values()]);
  });

  it('precondition: no ReLU changes sign within +-EPS of any input coordinate', () => {
    for (let i = 0; i < xVals.length; i++) {
      const p = Float64Array.from(xVals); p[i] += EPS;
      const m = Float64Array.from(xVals); m[i] -= EPS;
      expect(sameSigns(graph64(w, t64(p, xShape)).z.data, graph64(w, t64(m, xShape)).z.data), `x[${i}]`).toBe(true);
    }
  });

  for (const [label, weights] of [['class score (one-hot)', oneHotRows([0, 2], 3)], ['contrast (+1/-1)', [1, -1, 0, 0, -1, 1]]] as const) {
    it(`input gradient of a ${label} matches central finite differences`, () => {
      const wt = tf.tensor2d([...weights], [N, 3]);
      const r = adapter.gradient(x, classScore(wt), 'input');
      expect(r.grad.shape).toEqual(xShape);
      expect(maxAbsDiff(read64(r.logits), ref.logits.data)).toBeLessThan(1e-5);
      const g = read64(r.grad);
      const coords = Array.from({ length: xVals.length }, (_, i) => i);
      const fd32 = centralDiff((v) => {
        const xt = tf.tensor4d(Float32Array.from(v), xShape);
        const { logits } = adapter.forward(xt);
        const s = score64(t64(logits.dataSync(), [N, 3]), weights);
        tf.dispose([xt, logits]);
        return s;
      }, xVals, coords, EPS);
      const fd64 = centralDiff((v) => score64(graph64(w, t64(v, xShape)).logits, weights), xVals, coords, EPS);
      expect(g.some((v) => Math.abs(v) > 0.05)).toBe(true);
      expect(maxRelErr(g, fd32, 1e-2)).toBeLessThan(TOL);
      expect(maxRelErr(g, fd64, 1e-2)).toBeLessThan(TOL);
      tf.dispose([wt, r.grad, r.value, r.logits]);
    });

    it(`gradient of a ${label} w.r.t. the Relu node matches finite differences and the hand value`, () => {
      const wt = tf.tensor2d([...weights], [N, 3]);
      const r = adapter.gradient(x, classScore(wt), 'relu');
      expect(r.grad.shape).toEqual([N, 3, 3, 2]);
      expect(maxAbsDiff(read64(r.value), ref.a.data)).toBeLessThan(1e-6);
      expect(maxAbsDiff(read64(r.logits), ref.logits.data)).toBeLessThan(1e-5);
      const g = read64(r.grad);
      // downstream of relu: mean over 3x3, then MatMul -> d/da[n,i,j,c] = sum_k W[n,k] M[c,k] / 9
      const hand = Array.from(g, (_, i) => {
        const n = Math.floor(i / 18);
        const c = i % 2;
        return [0, 1, 2].reduce((s, k) => s + weights[n * 3 + k] * w.matmul[c * 3 + k] / 9, 0);
      });
      expect(maxAbsDiff(g, hand)).toBeLessThan(1e-6);
      // float32 finite differences through tf ops on the relu value (mean, matMul)
      const m = tf.tensor2d(w.matmul, [2, 3]);
      const coords = Array.from({ length: g.length }, (_, i) => i);
      const fd32 = centralDiff((v) => tf.tidy(() => {
        const a = tf.tensor4d(Float32Array.from(v), [N, 3, 3, 2]);
        return tf.sum(tf.mul(tf.matMul(tf.mean(a, [1, 2]) as tf.Tensor2D, m), wt)).dataSync()[0];
      }), ref.a.data, coords, EPS);
      expect(maxRelErr(g, fd32, 1e-2)).toBeLessThan(TOL);
      tf.dispose([m, wt, r.grad, r.value, r.logits]);
    });
  }

  it('ReLU rules switch for GraphModels too: input gradients under each rule equal the hand computation', async () => {
    const weights = oneHotRows([0, 1], 3);
    const wt = tf.tensor2d(weights, [N, 3]);
    /** dz -> dx through the 2x2 VALID conv (the transposed convolution), by hand. */
    const expectedFor = (rule: ReluRule) => {
      const dx = new Float64Array(N * 16);
      for (let n = 0; n < N; n++) for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let c = 0; c < 2; c++) {
        const g = [0, 1, 2].reduce((s, k) => s + weights[n * 3 + k] * w.matmul[c * 3 + k] / 9, 0);
        const z = ref.z.data[((n * 3 + i) * 3 + j) * 2 + c];
        const dz = rule === 'standard' ? g * (z > 0 ? 1 : 0) : rule === 'deconvnet' ? Math.max(g, 0) : Math.max(g, 0) * (z > 0 ? 1 : 0);
        for (let di = 0; di < 2; di++) for (let dj = 0; dj < 2; dj++) {
          dx[(n * 4 + i + di) * 4 + j + dj] += dz * w.filter[(di * 2 + dj) * 2 + c];
        }
      }
      return dx;
    };
    const results = new Map<ReluRule, Float64Array>();
    for (const rule of RELU_RULES) {
      const r = await withReluRule(rule, () => adapter.gradient(x, classScore(wt), 'input'));
      results.set(rule, read64(r.grad));
      expect(maxAbsDiff(read64(r.grad), expectedFor(rule)), rule).toBeLessThan(1e-6);
      tf.dispose([r.grad, r.value, r.logits]);
    }
    expect(maxAbsDiff(results.get('guided')!, results.get('standard')!)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(results.get('deconvnet')!, results.get('guided')!)).toBeGreaterThan(1e-3);
    // and the standard rule is back afterwards
    const after = adapter.gradient(x, classScore(wt), 'input');
    expect(Array.from(after.grad.dataSync())).toEqual(Array.from(results.get('standard')!, Math.fround));
    tf.dispose([wt, after.grad, after.value, after.logits]);
  });

  it('micro-batches: a batch larger than backwardBatch gives the per-example gradients', () => {
    const n = 5;
    const xb = tf.tensor4d(vals(n * 16, 99, 1), [n, 4, 4, 1]);
    const wt = tf.tensor2d(oneHotRows([0, 1, 2, 2, 1], 3), [n, 3]);
    Object.defineProperty(adapter, 'backwardBatch', { value: 2, configurable: true });
    try {
      for (const wrt of ['input', 'relu']) {
        const rows: [number, number][] = [];
        const base = classScore(wt);
        const spy: Objective = (out, r) => { rows.push([...r]); return base(out, r); };
        const all = adapter.gradient(xb, spy, wrt);
        expect(rows).toEqual([[0, 2], [2, 4], [4, 5]]);
        const singles: number[] = [];
        const logits: number[] = [];
        for (let i = 0; i < n; i++) {
          const xi = tf.slice(xb, [i, 0, 0, 0], [1, -1, -1, -1]);
          const wi = tf.slice(wt, [i, 0], [1, -1]);
          const r = adapter.gradient(xi, classScore(wi), wrt);
          singles.push(...r.grad.dataSync());
          logits.push(...r.logits.dataSync());
          tf.dispose([xi, wi, r.grad, r.value, r.logits]);
        }
        expect(maxAbsDiff(read64(all.grad), singles), wrt).toBeLessThan(1e-6);
        expect(maxAbsDiff(read64(all.logits), logits), wrt).toBeLessThan(1e-6);
        tf.dispose([all.grad, all.value, all.logits]);
      }
    } finally {
      Object.defineProperty(adapter, 'backwardBatch', { value: 64 });
    }
    tf.dispose([xb, wt]);
  });

  it('re-initialises named nodes by role, by hand, and restores the very same weights', async () => {
    const seed = 7;
    const logitsNow = () => {
      const t = tf.tidy(() => adapter.forward(x).logits);
      const v = read64(t);
      t.dispose();
      return v;
    };
    const before = tf.memory().numTensors;
    const original = adapter.weights('logits')[0];
    const logits0 = logitsNow();
    // MatMul's matrix (input 1): Glorot-uniform, limit sqrt(6 / (2 + 3)), drawn as initialWeight does
    const drawn = tf.tidy(() => Array.from(initialWeight('kernel', [2, 3], weightSeed(seed, 'logits', 1)).dataSync()));
    expect(drawn.every((v) => Math.abs(v) <= Math.sqrt(6 / 5))).toBe(true);
    const got = await adapter.withRandomizedLayers(['logits'], seed, logitsNow);
    expect(maxAbsDiff(got, graph64({ ...w, matmul: drawn }, t64(xVals, xShape)).logits.data)).toBeLessThan(1e-5);
    // BiasAdd's constant: zeros; together with the matrix, as a cascade would
    const both = await adapter.withRandomizedLayers(['logits', 'bias_add'], seed, logitsNow);
    expect(maxAbsDiff(both, graph64({ ...w, matmul: drawn, bias: [0, 0] }, t64(xVals, xShape)).logits.data)).toBeLessThan(1e-5);
    // Conv2D's filter: Glorot-uniform over fans 2*2*1 and 2*2*2
    const filter = tf.tidy(() => Array.from(graphInitialWeight('Conv2D', 1, [2, 2, 1, 2], weightSeed(seed, 'conv', 1)).dataSync()));
    const conv = await adapter.withRandomizedLayers(['conv'], seed, logitsNow);
    expect(maxAbsDiff(conv, graph64({ ...w, filter }, t64(xVals, xShape)).logits.data)).toBeLessThan(1e-5);
    // restored: the same tensor objects, the same outputs, nothing leaked; also when fn throws
    await expect(adapter.withRandomizedLayers(['logits'], seed, () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(adapter.weights('logits')[0]).toBe(original);
    expect(logitsNow()).toEqual(logits0);
    expect(tf.memory().numTensors).toBe(before);
    await expect(adapter.withRandomizedLayers(['logitz'], seed, () => 0)).rejects.toThrow(/no layer "logitz"/);
  });

  it('gives ops their roles: an add of one activation and a weight is a bias, of two activations a merge', () => {
    expect(graphRole('BiasAdd', 1)).toBe('bias');
    expect(graphRole('AddV2', 1)).toBe('bias');
    expect(graphRole('AddV2', 2)).toBe('merge');
    expect(graphRole('Mul', 1)).toBe('other');
    expect(graphRole('Mul', 2)).toBe('merge');
    expect(graphRole('ConcatV2', 2)).toBe('merge');
    expect(['_FusedConv2D', 'DepthwiseConv2dNative', '_FusedMatMul', 'Relu6', 'ConvlensBatchNorm', 'AvgPool', 'Max', 'Squeeze', 'MirrorPad', 'Transpose']
      .map((op) => graphRole(op, 1)))
      .toEqual(['convolution', 'depthwise-convolution', 'dense', 'activation', 'normalization', 'average-pooling', 'max-pooling', 'reshape', 'padding', 'other']);
  });

  it('chooses initial values by op and input position', () => {
    const val = (op: string, i: number) => tf.tidy(() => Array.from(graphInitialWeight(op, i, [2], 1).dataSync()));
    expect(val('FusedBatchNormV3', 1)).toEqual([1, 1]);
    expect(val('FusedBatchNormV3', 2)).toEqual([0, 0]);
    expect(val('FusedBatchNormV3', 4)).toEqual([1, 1]);
    expect(val('Mul', 1)).toEqual([1, 1]);
    expect(val('_FusedConv2D', 2)).toEqual([0, 0]);
    expect(val('AddV2', 1)).toEqual([0, 0]);
  });

  it('orders nodes topologically, keeping an order that already is one', () => {
    const n = (name: string, input: string[] = []) => ({ name, op: 'Relu', input });
    const shuffled = new Map([n('c', ['b']), n('a'), n('b', ['a:0', '^a'])].map((x) => [x.name, x]));
    expect(topologicalOps(shuffled).map((x) => x.name)).toEqual(['a', 'b', 'c']);
    const sorted = new Map([n('a'), n('x'), n('b', ['a']), n('c', ['b', 'x'])].map((x) => [x.name, x]));
    expect(topologicalOps(sorted).map((x) => x.name)).toEqual(['a', 'x', 'b', 'c']);
  });

  it('leaks no tensors: forward, probabilities, gradient, withReluRule', async () => {
    const wt = tf.tensor2d(oneHotRows([2, 0], 3), [N, 3]);
    const before = tf.memory().numTensors;
    const f = adapter.forward(x, ['relu', 'mean']);
    tf.dispose([f.logits, ...f.activations.values()]);
    expect(tf.memory().numTensors).toBe(before);
    adapter.probabilities(x).dispose();
    expect(tf.memory().numTensors).toBe(before);
    for (const wrt of ['input', 'relu', 'bias_add', 'mean']) {
      const r = adapter.gradient(x, classScore(wt), wrt, ['relu']);
      tf.dispose([r.grad, r.value, r.logits]);
      expect(tf.memory().numTensors, wrt).toBe(before);
    }
    for (const rule of RELU_RULES) {
      const r = await withReluRule(rule, () => adapter.gradient(x, classScore(wt), 'input'));
      tf.dispose([r.grad, r.value, r.logits]);
      expect(tf.memory().numTensors, rule).toBe(before);
    }
    wt.dispose();
  });
});

describe('loadModel over http', () => {
  let server: Server;
  let base: string;
  const requests: string[] = [];

  beforeAll(async () => {
    const dir = join(tmp, 'layers');
    const model = buildDag();
    await saveLayersModel(model, dir);
    model.dispose();
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      const file = { '/m/model.json': 'model.json', '/m/weights.bin': 'weights.bin' }[req.url ?? ''];
      if (!file) {
        res.writeHead(404).end('not found');
        return;
      }
      readFile(join(dir, file)).then((body) => res.writeHead(200).end(body), () => res.writeHead(500).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('loads a saved LayersModel from a URL, weights fetched beside model.json', async () => {
    const loaded = await loadModel(`${base}/m/model.json`);
    expect(loaded.format).toBe('layers-model');
    expect(loaded.location).toBe(`${base}/m/model.json`);
    expect(requests).toEqual(['/m/model.json', '/m/weights.bin']);
    const a = loaded.adapter;
    expect(a).toBeInstanceOf(LayersAdapter);
    expect(a.layers.map((l) => l.name)).toEqual(['c1', 'c2', 'skip', 'gap', 'fc']);
    // same logits as the model it was saved from
    const local = new LayersAdapter(buildDag());
    const x = tf.tensor4d(vals(32, 3, 1), [2, 4, 4, 1]);
    const l1 = a.forward(x).logits;
    const l2 = local.forward(x).logits;
    expect(Array.from(l1.dataSync())).toEqual(Array.from(l2.dataSync()));
    tf.dispose([x, l1, l2]);
    local.dispose();
    a.dispose();
  });

  it('a 404 is a ConvlensError that says HTTP 404', async () => {
    const err = await loadModel(`${base}/nothing/model.json`).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConvlensError);
    expect((err as Error).message).toMatch(/HTTP 404/);
    expect((err as Error).message).toContain(`${base}/nothing/model.json`);
  });
});
