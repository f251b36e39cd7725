/**
 * ReLU backward rules on a single nonlinearity, y = sum_i w_i * act(x_i), with hand-set w and x of
 * both signs, so the input gradient under each rule is known by hand (see relu-rules.ts):
 *   ReLU       standard w*[x>0]           deconvnet max(w,0)   guided max(w,0)*[x>0]
 *   Relu6      standard w*[0<x<6] under every rule (Captum overrides nn.ReLU only)
 *   LeakyReLU  standard w*(x>0 ? 1 : a) under every rule
 * and the standard rule is back, bit for bit, after withReluRule returns or throws.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { classScore } from '../../pipeline/model/adapter.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { currentReluRule, RELU_RULES, withReluRule, type ReluRule } from '../../pipeline/model/relu-rules.ts';
import { buildActModel, LEAKY_ALPHA, type ActKind } from '../helpers/tiny-models.ts';

beforeAll(async () => {
  tf.enableProdMode();
  await initBackend('wasm', silentLogger);
});

/** Weights of both signs; two examples whose inputs have both signs (and one above 6). */
const W = [1.5, -2, 0.5, -0.25, 3, -1];
const X = [
  [0.5, -1, 2, -0.5, 7, 1.25],
  [-0.75, 3, -2, 6.5, -0.125, -4],
];

const relu = (v: number) => Math.max(v, 0);
/** d act / dx at x (the standard local derivative). */
const local: Record<ActKind, (x: number) => number> = {
  relu: (x) => (x > 0 ? 1 : 0),
  relu6: (x) => (x > 0 && x < 6 ? 1 : 0),
  relu6layer: (x) => (x > 0 && x < 6 ? 1 : 0),
  leaky: (x) => (x > 0 ? 1 : LEAKY_ALPHA),
};

/** The hand-computed input gradient of y = sum w * act(x) under a rule; g = w arrives from above. */
function expected(kind: ActKind, rule: ReluRule, x: number[]): number[] {
  return x.map((xi, i) => {
    const g = W[i];
    if (rule === 'standard' || kind !== 'relu') return g * local[kind](xi);
    if (rule === 'deconvnet') return relu(g);
    return relu(g) * local[kind](xi);
  });
}

const activation: Record<ActKind, (x: tf.Tensor) => tf.Tensor> = {
  relu: (x) => tf.relu(x),
  relu6: (x) => tf.relu6(x),
  relu6layer: (x) => tf.relu6(x),
  leaky: (x) => tf.leakyRelu(x, LEAKY_ALPHA),
};

/** d/dx sum(w * act(x)) with tf.grad, for both examples. */
function rawGrad(kind: ActKind): number[][] {
  return tf.tidy(() => {
    const w = tf.tensor2d([W, W]);
    const x = tf.tensor2d(X);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(w, activation[kind](v))))(x);
    return g.arraySync() as number[][];
  });
}

describe('the rules on tf ops (any model: tfjs looks gradients up by kernel name)', () => {
  for (const kind of ['relu', 'relu6', 'leaky'] as const) {
    for (const rule of RELU_RULES) {
      it(`${kind}, ${rule}: the input gradient equals the hand computation`, async () => {
        const g = await withReluRule(rule, () => {
          expect(currentReluRule()).toBe(rule);
          return rawGrad(kind);
        });
        g.forEach((row, n) => {
          const e = expected(kind, rule, X[n]);
          row.forEach((v, i) => expect(v, `${kind} ${rule} [${n},${i}]`).toBeCloseTo(e[i], 6));
        });
      });
    }
  }

  it('the three rules really differ on this input (the checks above are not vacuous)', async () => {
    const std = rawGrad('relu');
    const dec = await withReluRule('deconvnet', () => rawGrad('relu'));
    const gui = await withReluRule('guided', () => rawGrad('relu'));
    expect(dec).not.toEqual(std);
    expect(gui).not.toEqual(std);
    expect(gui).not.toEqual(dec);
  });
});

describe('the rules through a LayersAdapter', () => {
  const adapters = new Map<ActKind, LayersAdapter>();
  let x: tf.Tensor4D;
  let ones: tf.Tensor2D;

  beforeAll(() => {
    for (const kind of ['relu', 'relu6', 'relu6layer', 'leaky'] as const) adapters.set(kind, new LayersAdapter(buildActModel(kind, W)));
    x = tf.tensor4d(X.flat(), [2, 1, 2, 3]);
    // a one-unit output is a binary head: scores [-z, z]; class 1 is y itself
    ones = tf.tensor2d([[0, 1], [0, 1]]);
  });
  afterAll(() => {
    for (const a of adapters.values()) a.dispose();
    tf.dispose([x, ones]);
  });

  const inputGrad = (a: LayersAdapter) => {
    const r = a.gradient(x, classScore(ones), 'input');
    const out = Array.from(r.grad.dataSync());
    tf.dispose([r.grad, r.value, r.logits]);
    return out;
  };

  // relu6 / relu6layer: tfjs-layers computes them as min(relu(x), 6); the adapter runs them as the
  // Relu6 op, which no rule touches (through the inner relu, deconvnet at x = 7 would give max(w, 0))
  for (const kind of ['relu', 'relu6', 'relu6layer', 'leaky'] as const) {
    it(`${kind}: standard, deconvnet and guided input gradients equal the hand computation`, async () => {
      const a = adapters.get(kind)!;
      expect(a.head.kind).toBe('binary');
      for (const rule of RELU_RULES) {
        const g = await withReluRule(rule, () => inputGrad(a));
        const e = [...expected(kind, rule, X[0]), ...expected(kind, rule, X[1])];
        g.forEach((v, i) => expect(v, `${rule} [${i}]`).toBeCloseTo(e[i], 6));
      }
    });
  }

  it('after withReluRule returns, the standard gradient is back, exactly', async () => {
    const a = adapters.get('relu')!;
    const leakyA = adapters.get('leaky')!;
    const before = inputGrad(a);
    const beforeLeaky = inputGrad(leakyA);
    const gradFns = ['Relu', 'Relu6', 'LeakyRelu'].map((k) => tf.getGradient(k));
    for (const rule of ['guided', 'deconvnet'] as const) {
      const inside = await withReluRule(rule, () => inputGrad(a));
      expect(inside).not.toEqual(before);
      expect(currentReluRule()).toBe('standard');
      expect(inputGrad(a)).toEqual(before);
      expect(inputGrad(leakyA)).toEqual(beforeLeaky);
    }
    expect(['Relu', 'Relu6', 'LeakyRelu'].map((k) => tf.getGradient(k))).toEqual(gradFns);
  });

  it('after withReluRule throws (synchronously or after an await), the standard gradient is back, exactly', async () => {
    const a = adapters.get('relu')!;
    const before = inputGrad(a);
    await expect(withReluRule('guided', () => { throw new Error('sync boom'); })).rejects.toThrow('sync boom');
    expect(currentReluRule()).toBe('standard');
    expect(inputGrad(a)).toEqual(before);
    await expect(withReluRule('deconvnet', async () => {
      await new Promise((r) => setTimeout(r, 1));
      expect(inputGrad(a)).not.toEqual(before); // the rule holds across the await
      throw new Error('async boom');
    })).rejects.toThrow('async boom');
    expect(currentReluRule()).toBe('standard');
    expect(inputGrad(a)).toEqual(before);
  });

  it('nested rules: the outer rule is back after the inner one ends', async () => {
    const a = adapters.get('relu')!;
    const std = inputGrad(a);
    const dec = await withReluRule('deconvnet', () => inputGrad(a));
    const gui = await withReluRule('guided', () => inputGrad(a));
    await withReluRule('deconvnet', async () => {
      expect(await withReluRule('guided', () => inputGrad(a))).toEqual(gui);
      expect(currentReluRule()).toBe('deconvnet');
      expect(inputGrad(a)).toEqual(dec);
      expect(await withReluRule('standard', () => inputGrad(a))).toEqual(std);
      expect(inputGrad(a)).toEqual(dec);
      await expect(withReluRule('guided', () => { throw new Error('inner'); })).rejects.toThrow('inner');
      expect(inputGrad(a)).toEqual(dec);
    });
    expect(inputGrad(a)).toEqual(std);
  });

  it('leaks no tensors', async () => {
    const a = adapters.get('leaky')!;
    const before = tf.memory().numTensors;
    for (const rule of RELU_RULES) await withReluRule(rule, () => inputGrad(a));
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('relu6 in a LayersModel keeps its values when run as the Relu6 op', () => {
  it('forward equals model.predict for activation relu6 and ReLU(maxValue 6)', () => {
    for (const kind of ['relu6', 'relu6layer'] as const) {
      const model = buildActModel(kind, W);
      const a = new LayersAdapter(model);
      const x = tf.tensor4d(X.flat(), [2, 1, 2, 3]);
      const { logits, activations } = a.forward(x, ['act']);
      expect(Array.from(activations.get('act')!.dataSync())).toEqual(X.flat().map((v) => Math.min(Math.max(v, 0), 6)));
      const p = model.predict(x) as tf.Tensor;
      // one output unit: a binary head, scores [-z, z]
      expect(Array.from(logits.dataSync())).toEqual(Array.from(p.dataSync()).flatMap((z) => [-z, z]));
      tf.dispose([x, logits, p, ...activations.values()]);
      a.dispose();
    }
  });
});
