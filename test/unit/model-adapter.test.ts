/**
 * LayersAdapter on tiny models with hand-set weights: activations, logits, layer table,
 * gradients against central finite differences, micro-batching, unknown names, the default
 * explanation layer, and tensor leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { classScore, type Objective } from '../../pipeline/model/adapter.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { withReluRule } from '../../pipeline/model/relu-rules.ts';
import { centralDiff, maxAbsDiff, maxRelErr, sameSigns, spreadIndices } from '../helpers/finite-diff.ts';
import {
  buildDag, buildNested, dag64, dagTail64, dagWeights, DAG_INPUT, nested64, nestedTailFromB1_64, nestedTailFromC1_64,
  nestedWeights, oneHotRows, read64, score64, softmax64, t64, vals,
} from '../helpers/tiny-models.ts';

beforeAll(async () => {
  tf.enableProdMode();
  await initBackend('wasm', silentLogger);
});

const N = 3;
const xShape: [number, number, number, number] = [N, ...DAG_INPUT];
/** Inputs picked (seed search) so that no ReLU pre-activation lies within 0.049 of zero (DAG) / 0.051 (nested). */
const xVals = vals(N * 16, 25902, 1);
const nestedXVals = vals(N * 16, 18361, 1);
const CLASSES = [0, 2, 1];
/** +1 on one class, -1 on another, per example. */
const CONTRAST = [1, -1, 0, 0, 1, -1, -1, 0, 1];

/** Perturbation for the finite differences. The class score is piecewise linear in the input and
 * the activations (ReLU, conv, mean, dense), so the central difference is exact up to float32
 * rounding (~1e-7 * |f| / eps ~ 1e-5) as long as no ReLU changes sign within +-eps, which
 * every test checks first with the float64 reference. */
const EPS = 1e-2;
const TOL = 2e-3;

function predictArray(model: tf.LayersModel, x: tf.Tensor): Float64Array {
  const y = model.predict(x) as tf.Tensor;
  const out = read64(y);
  y.dispose();
  return out;
}

/** The activation of `layer` by a sub-model of the original tfjs model (the reference). */
function subModelActivation(model: tf.LayersModel, layer: string, x: tf.Tensor): Float64Array {
  const sub = tf.model({ inputs: model.inputs, outputs: model.getLayer(layer).output as tf.SymbolicTensor });
  return predictArray(sub, x);
}

describe('LayersAdapter on a functional DAG (conv -> conv, skip add, GAP, dense softmax)', () => {
  const w = dagWeights();
  let model: tf.LayersModel;
  let adapter: LayersAdapter;
  let x: tf.Tensor4D;
  let ref: ReturnType<typeof dag64>;

  beforeAll(() => {
    model = buildDag(w);
    adapter = new LayersAdapter(model);
    x = tf.tensor4d(xVals, xShape);
    ref = dag64(w, t64(xVals, xShape));
  });
  afterAll(() => {
    x.dispose();
    adapter.dispose();
  });

  it('describes the model: shape, classes, layers with types, shapes, params and inputs', () => {
    expect(adapter.format).toBe('layers-model');
    expect(adapter.inputShape).toEqual([4, 4, 1]);
    expect(adapter.numClasses).toBe(3);
    expect(adapter.layers.map((l) => l.name)).toEqual(['c1', 'c2', 'skip', 'gap', 'fc']);
    expect(adapter.layers.map((l) => l.type)).toEqual(['Conv2D', 'Conv2D', 'Add', 'GlobalAveragePooling2D', 'Dense']);
    expect(adapter.layers.map((l) => l.role)).toEqual(['convolution', 'convolution', 'merge', 'average-pooling', 'dense']);
    expect(adapter.layers.map((l) => l.outputShape)).toEqual([[null, 4, 4, 2], [null, 4, 4, 2], [null, 4, 4, 2], [null, 2], [null, 3]]);
    // c1: 3*3*1*2 + 2, c2: 3*3*2*2 + 2, fc: 2*3 + 3
    expect(adapter.layers.map((l) => l.params)).toEqual([20, 38, 0, 0, 9]);
    expect(adapter.layers.map((l) => l.inputs)).toEqual([['input'], ['c1'], ['c1', 'c2'], ['skip'], ['gap']]);
    const total = adapter.layers.reduce((s, l) => s + l.params, 0);
    expect(total).toBe(model.countParams());
    expect(adapter.countParams()).toBe(67);
    expect(adapter.layer('c2').conv).toEqual({ kernel: [3, 3], strides: [1, 1], padding: 'same', dilation: [1, 1] });
    expect(adapter.layer('skip').conv).toBeUndefined();
    expect(adapter.firstConvLayer()?.name).toBe('c1');
    const [kernel, bias] = adapter.weights('c2');
    expect(Array.from(kernel.dataSync())).toEqual(w.k2);
    expect(Array.from(bias.dataSync())).toEqual(w.b2);
  });

  it('returns several activations from one forward pass, each equal to a sub-model prediction', () => {
    const names = ['c1', 'c2', 'skip', 'gap', 'fc'];
    const calls = new Map<string, number>();
    // count layer calls during forward: one pass means each layer runs exactly once
    const layers = names.map((n) => model.getLayer(n) as unknown as { call: (...a: unknown[]) => unknown });
    const originals = layers.map((l) => l.call);
    layers.forEach((l, i) => {
      l.call = function (this: unknown, ...args: unknown[]) {
        calls.set(names[i], (calls.get(names[i]) ?? 0) + 1);
        return originals[i].apply(this, args);
      };
    });
    let out: ReturnType<LayersAdapter['forward']>;
    try {
      out = adapter.forward(x, names);
    } finally {
      layers.forEach((l, i) => { l.call = originals[i]; });
    }
    // Conv2D and Dense run unfused (not through layer.call); Add, GAP do go through call, once each
    expect(calls.get('skip')).toBe(1);
    expect(calls.get('gap')).toBe(1);
    expect([...out.activations.keys()]).toEqual(names);
    for (const n of names) {
      const a = out.activations.get(n)!;
      const expected = subModelActivation(model, n, x);
      expect(a.shape, n).toEqual([N, ...adapter.layer(n).outputShape.slice(1)]);
      expect(maxAbsDiff(read64(a), expected), n).toBeLessThan(1e-6);
    }
    // against the float64 hand computation, too
    expect(maxAbsDiff(read64(out.activations.get('c1')!), ref.a1.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(read64(out.activations.get('c2')!), ref.a2.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(read64(out.activations.get('skip')!), ref.s.data)).toBeLessThan(1e-5);
    tf.dispose([out.logits, ...out.activations.values()]);
  });

  it('gives the pre-softmax logits: softmax(logits) = model.predict, logits = the dense output by hand', () => {
    const { logits } = adapter.forward(x);
    expect(logits.shape).toEqual([N, 3]);
    const l = read64(logits);
    // hand computation from the weights: conv, relu, conv, relu, add, mean, x*W + b
    expect(maxAbsDiff(l, ref.logits.data)).toBeLessThan(1e-5);
    // they are not the probabilities
    expect(maxAbsDiff(l, softmax64(ref.logits).data)).toBeGreaterThan(0.1);
    const probs = tf.softmax(logits);
    expect(maxAbsDiff(read64(probs), predictArray(model, x))).toBeLessThan(1e-6);
    const p2 = adapter.probabilities(x);
    expect(maxAbsDiff(read64(p2), softmax64(ref.logits).data)).toBeLessThan(1e-6);
    tf.dispose([logits, probs, p2]);
  });

  it('precondition: no ReLU changes sign within +-EPS of x or of the c1/c2 activations', () => {
    // every coordinate, both perturbations: the finite differences below are then exact
    for (let i = 0; i < xVals.length; i++) {
      const p = Float64Array.from(xVals); p[i] += EPS;
      const m = Float64Array.from(xVals); m[i] -= EPS;
      const rp = dag64(w, t64(p, xShape));
      const rm = dag64(w, t64(m, xShape));
      expect(sameSigns(rp.z1.data, rm.z1.data) && sameSigns(rp.z2.data, rm.z2.data), `x[${i}]`).toBe(true);
    }
    for (let i = 0; i < ref.a1.data.length; i++) {
      const p = Float64Array.from(ref.a1.data); p[i] += EPS;
      const m = Float64Array.from(ref.a1.data); m[i] -= EPS;
      expect(sameSigns(dagTail64(w, t64(p, ref.a1.shape)).z2.data, dagTail64(w, t64(m, ref.a1.shape)).z2.data), `a1[${i}]`).toBe(true);
    }
  });

  /** The objective through the adapter's own forward pass (float32), for finite differences. */
  function scoreOfInput(weights: number[]) {
    return (v: Float64Array) => {
      const xt = tf.tensor4d(Float32Array.from(v), xShape);
      const { logits } = adapter.forward(xt);
      const s = score64(t64(logits.dataSync(), [N, 3]), weights);
      tf.dispose([xt, logits]);
      return s;
    };
  }

  /** The DAG from c1's activation on, in float32 tfjs ops (a reference independent of the adapter). */
  function scoreOfC1(weights: number[]) {
    const [k2, b2] = model.getLayer('c2').getWeights();
    const [kd, bd] = model.getLayer('fc').getWeights();
    return (v: Float64Array) => tf.tidy(() => {
      const a1 = tf.tensor4d(Float32Array.from(v), [N, 4, 4, 2]);
      const a2 = tf.relu(tf.add(tf.conv2d(a1, k2 as tf.Tensor4D, 1, 'same'), b2));
      const logits = tf.add(tf.matMul(tf.mean(tf.add(a1, a2), [1, 2]) as tf.Tensor2D, kd as tf.Tensor2D), bd);
      return tf.sum(tf.mul(logits, tf.tensor2d(weights, [N, 3]))).dataSync()[0];
    });
  }

  for (const [label, weights] of [['class score (one-hot)', oneHotRows(CLASSES, 3)], ['contrast (+1/-1)', CONTRAST]] as const) {
    it(`input gradient of a ${label} matches central finite differences`, () => {
      const wt = tf.tensor2d([...weights], [N, 3]);
      const r = adapter.gradient(x, classScore(wt), 'input');
      expect(r.grad.shape).toEqual(xShape);
      expect(r.value.shape).toEqual(xShape);
      expect(maxAbsDiff(read64(r.value), xVals)).toBe(0);
      expect(maxAbsDiff(read64(r.logits), ref.logits.data)).toBeLessThan(1e-5);
      const g = read64(r.grad);
      const coords = spreadIndices(xVals.length, 16, 1);
      const fd32 = centralDiff(scoreOfInput([...weights]), xVals, coords, EPS);
      const fd64 = centralDiff((v) => score64(dag64(w, t64(v, xShape)).logits, weights), xVals, coords, EPS);
      const got = coords.map((i) => g[i]);
      expect(got.some((v) => Math.abs(v) > 0.05)).toBe(true); // not a vacuous comparison
      expect(maxRelErr(got, fd32, 1e-2)).toBeLessThan(TOL);
      expect(maxRelErr(got, fd64, 1e-2)).toBeLessThan(TOL);
      tf.dispose([wt, r.grad, r.value, r.logits]);
    });

    it(`gradient of a ${label} w.r.t. c1 (feeds both the skip and c2) matches finite differences`, () => {
      const wt = tf.tensor2d([...weights], [N, 3]);
      const r = adapter.gradient(x, classScore(wt), 'c1');
      expect(r.grad.shape).toEqual([N, 4, 4, 2]);
      expect(maxAbsDiff(read64(r.value), ref.a1.data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(read64(r.logits), ref.logits.data)).toBeLessThan(1e-5);
      const g = read64(r.grad);
      const a1 = ref.a1.data;
      const coords = spreadIndices(a1.length, 24, 2);
      const fd32 = centralDiff(scoreOfC1([...weights]), a1, coords, EPS);
      const fd64 = centralDiff((v) => score64(dagTail64(w, t64(v, ref.a1.shape)).logits, weights), a1, coords, EPS);
      const got = coords.map((i) => g[i]);
      expect(maxRelErr(got, fd32, 1e-2)).toBeLessThan(TOL);
      expect(maxRelErr(got, fd64, 1e-2)).toBeLessThan(TOL);
      // the skip path alone would give kd[c,k]/16 per channel; the c2 path must add to it
      const skipOnly = coords.map((i) => {
        const b = Math.floor(i / 32);
        const c = i % 2;
        return [0, 1, 2].reduce((s, k) => s + weights[b * 3 + k] * w.kd[c * 3 + k] / 16, 0);
      });
      expect(maxRelErr(got, skipOnly, 1e-2)).toBeGreaterThan(0.05);
      tf.dispose([wt, r.grad, r.value, r.logits]);
    });
  }

  it('gradient w.r.t. c2 (inside the skip) equals kd/16 where c2 is active (by hand)', () => {
    const weights = oneHotRows(CLASSES, 3);
    const wt = tf.tensor2d(weights, [N, 3]);
    const r = adapter.gradient(x, classScore(wt), 'c2');
    const g = read64(r.grad);
    // d score / d a2[b,i,j,c] = sum_k W[b,k] kd[c,k] / 16 (the mean over 4x4 then the dense layer)
    const expected = Array.from(g, (_, i) => {
      const b = Math.floor(i / 32);
      const c = i % 2;
      return [0, 1, 2].reduce((s, k) => s + weights[b * 3 + k] * w.kd[c * 3 + k] / 16, 0);
    });
    expect(maxAbsDiff(g, expected)).toBeLessThan(1e-6);
    expect(maxAbsDiff(read64(r.value), ref.a2.data)).toBeLessThan(1e-5);
    tf.dispose([wt, r.grad, r.value, r.logits]);
  });

  it('micro-batches: a batch larger than backwardBatch gives the per-example gradients', () => {
    const n = 5;
    const xv = vals(n * 16, 77, 1);
    const xb = tf.tensor4d(xv, [n, 4, 4, 1]);
    const weights = oneHotRows([0, 1, 2, 1, 0], 3);
    const wt = tf.tensor2d(weights, [n, 3]);
    const small = new LayersAdapter(model);
    Object.defineProperty(small, 'backwardBatch', { value: 2 });
    expect(small.backwardBatch).toBe(2);
    for (const wrt of ['input', 'c1', 'c2'] as const) {
      const rows: [number, number][] = [];
      const base = classScore(wt);
      const spy: Objective = (out, r) => { rows.push([...r]); return base(out, r); };
      const all = small.gradient(xb, spy, wrt);
      expect(rows, wrt).toEqual([[0, 2], [2, 4], [4, 5]]);
      expect(all.grad.shape[0]).toBe(n);
      const singles = Array.from({ length: n }, (_, i) => {
        const xi = tf.slice(xb, [i, 0, 0, 0], [1, -1, -1, -1]);
        const wi = tf.slice(wt, [i, 0], [1, -1]);
        const r = adapter.gradient(xi, classScore(wi), wrt);
        const out = { grad: read64(r.grad), value: read64(r.value), logits: read64(r.logits) };
        tf.dispose([xi, wi, r.grad, r.value, r.logits]);
        return out;
      });
      const cat = (k: 'grad' | 'value' | 'logits') => singles.flatMap((s) => Array.from(s[k]));
      expect(maxAbsDiff(read64(all.grad), cat('grad')), wrt).toBeLessThan(1e-6);
      expect(maxAbsDiff(read64(all.value), cat('value')), wrt).toBeLessThan(1e-6);
      expect(maxAbsDiff(read64(all.logits), cat('logits')), wrt).toBeLessThan(1e-6);
      // and the per-example gradients are not all the same (the rows were really sliced)
      expect(maxAbsDiff(singles[0].grad, singles[1].grad)).toBeGreaterThan(1e-3);
      tf.dispose([all.grad, all.value, all.logits]);
    }
    tf.dispose([xb, wt]);
  });

  it('an objective that throws: the error propagates and later gradients are unchanged', () => {
    // (tfjs itself keeps the tensors its tape saved for the backward pass when the differentiated
    // function throws, so no tensor count is asserted here; see the report)
    const wt = tf.tensor2d(oneHotRows(CLASSES, 3), [N, 3]);
    const before = adapter.gradient(x, classScore(wt), 'c1');
    for (const wrt of ['input', 'c1']) {
      expect(() => adapter.gradient(x, () => { throw new Error('boom'); }, wrt)).toThrow('boom');
    }
    const after = adapter.gradient(x, classScore(wt), 'c1');
    expect(Array.from(after.grad.dataSync())).toEqual(Array.from(before.grad.dataSync()));
    tf.dispose([wt, before.grad, before.value, before.logits, after.grad, after.value, after.logits]);
  });

  it('unknown layer names throw with the nearest names', () => {
    const err = (() => { try { adapter.layer('c9'); } catch (e) { return e; } return undefined; })();
    expect(err).toBeInstanceOf(ConvlensError);
    expect((err as Error).message).toBe('no layer "c9"; nearest: c1, c2, fc');
    expect((err as ConvlensError).hint).toMatch(/5 layers/);
    expect(() => adapter.layer('skp')).toThrow('no layer "skp"; nearest: skip, gap, c1');
    const before = tf.memory().numTensors;
    expect(() => adapter.forward(x, ['c1', 'c9'])).toThrow('no layer "c9"; nearest: c1, c2, fc');
    const wt = tf.tensor2d(oneHotRows(CLASSES, 3), [N, 3]);
    expect(() => adapter.gradient(x, classScore(wt), 'c9')).toThrow(ConvlensError);
    expect(() => adapter.gradient(x, classScore(wt), 'input', ['gapp'])).toThrow('no layer "gapp"; nearest: gap');
    expect(() => adapter.weights('c9')).toThrow(ConvlensError);
    wt.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('lastSpatialLayer is the skip add (the last [n,h,w,c] output)', () => {
    expect(adapter.lastSpatialLayer().name).toBe('skip');
  });

  it('a wrong input size is refused', () => {
    const bad = tf.zeros([1, 5, 4, 1]) as tf.Tensor4D;
    expect(() => adapter.forward(bad)).toThrow(/expects 4x4x1 images but got 5x4x1/);
    bad.dispose();
  });

  it('leaks no tensors: forward, probabilities, gradient (single and micro-batched), withReluRule', async () => {
    const wt = tf.tensor2d(oneHotRows(CLASSES, 3), [N, 3]);
    const small = new LayersAdapter(model);
    Object.defineProperty(small, 'backwardBatch', { value: 1 });
    const before = tf.memory().numTensors;
    const f = adapter.forward(x, ['c1', 'skip', 'fc']);
    tf.dispose([f.logits, ...f.activations.values()]);
    expect(tf.memory().numTensors).toBe(before);
    adapter.probabilities(x).dispose();
    expect(tf.memory().numTensors).toBe(before);
    for (const a of [adapter, small]) {
      for (const wrt of ['input', 'c1', 'c2', 'gap']) {
        const r = a.gradient(x, classScore(wt), wrt, ['skip']);
        tf.dispose([r.grad, r.value, r.logits]);
        expect(tf.memory().numTensors, `${wrt}, batch ${a.backwardBatch}`).toBe(before);
      }
    }
    for (const rule of ['guided', 'deconvnet', 'standard'] as const) {
      const r = await withReluRule(rule, () => adapter.gradient(x, classScore(wt), 'input'));
      tf.dispose([r.grad, r.value, r.logits]);
      expect(tf.memory().numTensors, rule).toBe(before);
    }
    // the results are ordinary tensors: a caller's tf.tidy cleans up what it does not return
    const kept = tf.tidy(() => {
      const r1 = adapter.gradient(x, classScore(wt), 'input');
      const r2 = small.gradient(x, classScore(wt), 'c1');
      return tf.add(r1.logits, r2.logits);
    });
    expect(tf.memory().numTensors).toBe(before + 1);
    kept.dispose();
    wt.dispose();
  });
});

describe('LayersAdapter with a nested tf.sequential block inside a functional model', () => {
  const w = nestedWeights();
  let model: tf.LayersModel;
  let block: tf.Sequential;
  let adapter: LayersAdapter;
  let x: tf.Tensor4D;
  let ref: ReturnType<typeof nested64>;

  beforeAll(() => {
    ({ model, block } = buildNested(w));
    adapter = new LayersAdapter(model);
    x = tf.tensor4d(nestedXVals, xShape);
    ref = nested64(w, t64(nestedXVals, xShape));
  });
  afterAll(() => {
    x.dispose();
    adapter.dispose();
  });

  it('expands the block: its layers are listed under their own names, params add up', () => {
    expect(adapter.layers.map((l) => l.name)).toEqual(['c1', 'b1', 'b2', 'skip', 'gap', 'fc']);
    expect(adapter.layers.map((l) => l.type)).toEqual(['Conv2D', 'Conv2D', 'Conv2D', 'Add', 'GlobalAveragePooling2D', 'Dense']);
    expect(adapter.layers.map((l) => l.params)).toEqual([20, 38, 6, 0, 0, 9]);
    expect(adapter.layers.map((l) => l.inputs)).toEqual([['input'], ['c1'], ['b1'], ['c1', 'b2'], ['skip'], ['gap']]);
    expect(adapter.layers.reduce((s, l) => s + l.params, 0)).toBe(model.countParams());
    expect(adapter.lastSpatialLayer().name).toBe('skip');
  });

  it('one forward pass gives the activations inside and outside the block, and the logits', () => {
    const out = adapter.forward(x, ['c1', 'b1', 'b2', 'skip']);
    expect(maxAbsDiff(read64(out.activations.get('c1')!), subModelActivation(model, 'c1', x))).toBeLessThan(1e-6);
    expect(maxAbsDiff(read64(out.activations.get('skip')!), subModelActivation(model, 'skip', x))).toBeLessThan(1e-6);
    // inner layers: a sub-model of the block, fed the c1 activation
    const c1 = out.activations.get('c1')!;
    for (const n of ['b1', 'b2']) {
      const sub = tf.model({ inputs: block.inputs, outputs: block.getLayer(n).output as tf.SymbolicTensor });
      expect(maxAbsDiff(read64(out.activations.get(n)!), predictArray(sub, c1)), n).toBeLessThan(1e-6);
    }
    expect(maxAbsDiff(read64(out.activations.get('b1')!), ref.ab1.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(read64(out.logits), ref.logits.data)).toBeLessThan(1e-5);
    const probs = tf.softmax(out.logits);
    expect(maxAbsDiff(read64(probs), predictArray(model, x))).toBeLessThan(1e-6);
    tf.dispose([probs, out.logits, ...out.activations.values()]);
  });

  it('gradients w.r.t. the input, c1 (before the block and the skip) and b1 (inside the block) match finite differences', () => {
    const weights = CONTRAST;
    const wt = tf.tensor2d(weights, [N, 3]);
    // preconditions: no ReLU kink within +-EPS for the coordinates perturbed
    const cx = spreadIndices(nestedXVals.length, 12, 3);
    for (const i of cx) {
      const p = Float64Array.from(nestedXVals); p[i] += EPS;
      const m = Float64Array.from(nestedXVals); m[i] -= EPS;
      const rp = nested64(w, t64(p, xShape));
      const rm = nested64(w, t64(m, xShape));
      expect(sameSigns(rp.z1.data, rm.z1.data) && sameSigns(rp.zb1.data, rm.zb1.data), `x[${i}]`).toBe(true);
    }
    const ca = spreadIndices(ref.a1.data.length, 16, 1);
    for (const i of ca) {
      const p = Float64Array.from(ref.a1.data); p[i] += EPS;
      const m = Float64Array.from(ref.a1.data); m[i] -= EPS;
      expect(sameSigns(nestedTailFromC1_64(w, t64(p, ref.a1.shape)).zb1.data, nestedTailFromC1_64(w, t64(m, ref.a1.shape)).zb1.data)).toBe(true);
    }
    const rx = adapter.gradient(x, classScore(wt), 'input');
    const fdx = centralDiff((v) => score64(nested64(w, t64(v, xShape)).logits, weights), nestedXVals, cx, EPS);
    const gx = read64(rx.grad);
    expect(maxRelErr(cx.map((i) => gx[i]), fdx, 1e-2)).toBeLessThan(TOL);

    const rc = adapter.gradient(x, classScore(wt), 'c1');
    const fdc = centralDiff((v) => score64(nestedTailFromC1_64(w, t64(v, ref.a1.shape)).logits, weights), ref.a1.data, ca, EPS);
    const gc = read64(rc.grad);
    expect(maxRelErr(ca.map((i) => gc[i]), fdc, 1e-2)).toBeLessThan(TOL);

    const rb = adapter.gradient(x, classScore(wt), 'b1');
    expect(maxAbsDiff(read64(rb.value), ref.ab1.data)).toBeLessThan(1e-5);
    const cb = spreadIndices(ref.ab1.data.length, 16, 0);
    const fdb = centralDiff((v) => score64(nestedTailFromB1_64(w, ref.a1, t64(v, ref.ab1.shape)), weights), ref.ab1.data, cb, EPS);
    const gb = read64(rb.grad);
    expect(maxRelErr(cb.map((i) => gb[i]), fdb, 1e-2)).toBeLessThan(TOL);
    expect(maxAbsDiff(read64(rb.logits), ref.logits.data)).toBeLessThan(1e-5);
    tf.dispose([wt, rx.grad, rx.value, rx.logits, rc.grad, rc.value, rc.logits, rb.grad, rb.value, rb.logits]);
  });
});

describe('LayersAdapter roles', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('gives each Keras class its role; a linear Activation is the identity, an unknown class other', () => {
    const input = tf.input({ shape: [8, 8, 3] });
    const chain: [tf.layers.Layer, string][] = [
      [tf.layers.zeroPadding2d({ padding: 1, name: 'pad' }), 'padding'],
      [tf.layers.conv2d({ filters: 4, kernelSize: 3, name: 'conv' }), 'convolution'],
      [tf.layers.batchNormalization({ name: 'bn' }), 'normalization'],
      [tf.layers.reLU({ name: 'relu' }), 'activation'],
      [tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw' }), 'depthwise-convolution'],
      [tf.layers.separableConv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'sep' }), 'convolution'],
      [tf.layers.maxPooling2d({ poolSize: 2, name: 'maxpool' }), 'max-pooling'],
      [tf.layers.activation({ activation: 'linear', name: 'linear' }), 'identity'],
      [tf.layers.permute({ dims: [2, 1, 3], name: 'permute' }), 'other'],
      [tf.layers.dropout({ rate: 0.5, name: 'drop' }), 'identity'],
      [tf.layers.globalAveragePooling2d({ name: 'gap' }), 'average-pooling'],
      [tf.layers.reshape({ targetShape: [4], name: 'reshape' }), 'reshape'],
      [tf.layers.dense({ units: 3, name: 'fc' }), 'dense'],
      [tf.layers.softmax({ name: 'probs' }), 'activation'],
    ];
    let y = input as tf.SymbolicTensor;
    for (const [layer] of chain) y = layer.apply(y) as tf.SymbolicTensor;
    const adapter = new LayersAdapter(tf.model({ inputs: input, outputs: y }));
    expect(adapter.layers.map((l) => [l.name, l.role])).toEqual(chain.map(([l, role]) => [l.name, role]));
    adapter.dispose();
  });
});

describe('lastSpatialLayer', () => {
  const conv = (name: string, filters: number, kernelSize: number) =>
    tf.layers.conv2d({ name, filters, kernelSize, padding: 'same', activation: 'relu' });

  it('NiN/Darknet head: a 1x1 conv to one map per class before GAP -> the layer feeding it', () => {
    const input = tf.input({ shape: [6, 6, 1] });
    let h = conv('feat', 4, 3).apply(input) as tf.SymbolicTensor;
    h = tf.layers.conv2d({ name: 'cls', filters: 3, kernelSize: 1 }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.activation({ activation: 'softmax', name: 'prob' }).apply(h) as tf.SymbolicTensor;
    const a = new LayersAdapter(tf.model({ inputs: input, outputs: h }));
    expect(a.numClasses).toBe(3);
    expect(a.layer('cls').conv?.kernel).toEqual([1, 1]);
    expect(a.lastSpatialLayer().name).toBe('feat');
    // the logits are the GAP output (the softmax layer is split off)
    const xt = tf.ones([1, 6, 6, 1]) as tf.Tensor4D;
    const out = a.forward(xt, ['gap']);
    expect(maxAbsDiff(read64(out.logits), read64(out.activations.get('gap')!))).toBe(0);
    tf.dispose([xt, out.logits, ...out.activations.values()]);
    a.dispose();
  });

  it('a 1x1 conv to one map per class that reads the image itself is the last spatial layer (there is nothing before it)', () => {
    const input = tf.input({ shape: [6, 6, 1] });
    let h = tf.layers.conv2d({ name: 'cls', filters: 3, kernelSize: 1 }).apply(input) as tf.SymbolicTensor;
    h = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as tf.SymbolicTensor;
    const a = new LayersAdapter(tf.model({ inputs: input, outputs: h }));
    expect(a.lastSpatialLayer().name).toBe('cls');
    a.dispose();
  });

  it('a 1x1 conv with a channel count other than the classes is a feature layer', () => {
    const input = tf.input({ shape: [6, 6, 1] });
    let h = conv('feat', 4, 3).apply(input) as tf.SymbolicTensor;
    h = tf.layers.conv2d({ name: 'proj', filters: 5, kernelSize: 1 }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.dense({ units: 3, activation: 'softmax', name: 'fc' }).apply(h) as tf.SymbolicTensor;
    const a = new LayersAdapter(tf.model({ inputs: input, outputs: h }));
    expect(a.lastSpatialLayer().name).toBe('proj');
    a.dispose();
  });

  it('skips layers whose spatial size is 1x1', () => {
    const input = tf.input({ shape: [4, 4, 1] });
    let h = conv('c', 2, 3).apply(input) as tf.SymbolicTensor;
    h = tf.layers.maxPooling2d({ name: 'pool', poolSize: 4 }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.flatten({ name: 'flat' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.dense({ units: 3, name: 'fc' }).apply(h) as tf.SymbolicTensor;
    const a = new LayersAdapter(tf.model({ inputs: input, outputs: h }));
    expect(a.layer('pool').outputShape).toEqual([null, 1, 1, 2]);
    expect(a.lastSpatialLayer().name).toBe('c');
    a.dispose();
  });

  it('throws a ConvlensError when no layer is spatial', () => {
    const input = tf.input({ shape: [1, 1, 4] });
    const h = tf.layers.flatten({ name: 'flat' }).apply(input) as tf.SymbolicTensor;
    const a = new LayersAdapter(tf.model({ inputs: input, outputs: tf.layers.dense({ units: 2, name: 'fc' }).apply(h) as tf.SymbolicTensor }));
    expect(() => a.lastSpatialLayer()).toThrow(ConvlensError);
    expect(() => a.lastSpatialLayer()).toThrow(/no layer with a spatial output/);
    a.dispose();
  });
});

