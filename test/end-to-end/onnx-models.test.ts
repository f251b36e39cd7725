/**
 * ONNX exports of torchvision CNNs (../shared/fixtures/onnx: SqueezeNet 1.1 and
 * MobileNetV3-Small, opset 17, dynamic batch, random weights), loaded as a user would through
 * loadModel: the logits reproduce PyTorch's to 1e-4; input gradients agree with central
 * differences at single pixels (SqueezeNet) and at single activations of the last spatial layer,
 * and through the chain rule along a random input direction; the CAM head is found where there is one; the guided ReLU rule
 * reaches the translated ReLUs; parameter randomization changes the logits and restores them
 * exactly.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { findCamHead } from '../../pipeline/methods/cam.ts';
import { classScore, type ModelAdapter } from '../../pipeline/model/adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { withReluRule } from '../../pipeline/model/relu-rules.ts';
import { maxAbsDiff } from '../helpers/finite-diff.ts';

const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures/onnx');
const have = existsSync(resolve(FIXTURES, 'README.md'));
if (!have) console.warn(`skipping the ONNX model tests: ${FIXTURES} is absent`);

/**
 * `cam`: torchvision's MobileNetV3 classifier is Linear -> Hardswish -> Dropout -> Linear, not a
 * linear layer on the pooling, so CAM rightly refuses it.
 * `inputFd`: with these random weights MobileNetV3-Small's logits are ~1e-3 and their input
 * gradients ~1e-11, below what float32 central differences resolve; its gradients are checked at
 * the last spatial layer (~1e-3) instead.
 */
const CASES = [
  { name: 'squeezenet1_1', lastSpatial: '/features/features.12/Concat', lastShape: [null, 5, 5, 512], cam: 'class-maps+gap' as const, inputFd: true },
  { name: 'mobilenet_v3_small', lastSpatial: '/features/features.12/features.12.2/HardSwish', lastShape: [null, 3, 3, 576], cam: undefined, inputFd: false },
];

/** Indices of the `k` largest |v|. */
const topIndices = (v: Float32Array, k: number) => Array.from(v.keys()).sort((p, q) => Math.abs(v[q]) - Math.abs(v[p])).slice(0, k);

/** A seeded direction of unit RMS, shaped like `shape`. */
const direction = (shape: number[], seed: number) => tf.tidy(() => {
  const v = tf.randomNormal(shape, 0, 1, 'float32', seed);
  return tf.div(v, tf.sqrt(tf.mean(tf.square(v))));
});

describe.skipIf(!have)('ONNX exports of torchvision models', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  for (const c of CASES) {
    describe(c.name, () => {
      let adapter: ModelAdapter;
      let x: tf.Tensor4D;
      let weights: tf.Tensor2D;
      const score = (xx: tf.Tensor4D) => tf.tidy(() => tf.sum(tf.mul(adapter.forward(xx).logits, weights)).dataSync()[0]);
      afterAll(() => {
        tf.dispose([x, weights]);
        adapter?.dispose();
      });

      it('loads as format onnx and reproduces PyTorch\'s logits to 1e-4', async () => {
        const loaded = await loadModel(resolve(FIXTURES, c.name));
        adapter = loaded.adapter;
        expect(loaded.format).toBe('onnx');
        expect(loaded.weightsSha256).toMatch(/^[0-9a-f]{64}$/);
        expect(adapter.inputShape).toEqual([96, 96, 3]);
        expect(adapter.head).toEqual({ kind: 'logits', activation: 'none', units: 10 });
        const ref = JSON.parse(readFileSync(resolve(FIXTURES, c.name, 'reference.json'), 'utf8')) as { x: number[][][][]; logits: number[][] };
        x = tf.tidy(() => tf.transpose(tf.tensor4d(ref.x), [0, 2, 3, 1]));
        const logits = tf.tidy(() => adapter.forward(x).logits.arraySync());
        expect(maxAbsDiff(logits.flat(), ref.logits.flat())).toBeLessThan(1e-4);
        const top = logits.map((row) => row.indexOf(Math.max(...row)));
        weights = tf.tidy(() => tf.oneHot(tf.tensor1d(top, 'int32'), 10).toFloat() as tf.Tensor2D);
      });

      it('lists layers with shapes; the last spatial layer is the last feature map', () => {
        const last = adapter.lastSpatialLayer();
        expect(last.name).toBe(c.lastSpatial);
        expect(last.outputShape).toEqual(c.lastShape);
        expect(adapter.firstConvLayer()?.conv?.kernel).toEqual([3, 3]);
      });

      it(c.inputFd ? 'input gradients agree with central differences at the pixels of largest gradient' : 'input gradients are finite and not all zero (too small for float32 differences, see CASES)', () => {
        const g = adapter.gradient(x, classScore(weights), 'input');
        const grad = Float32Array.from(g.grad.dataSync());
        tf.dispose([g.grad, g.value, g.logits]);
        expect(grad.every(Number.isFinite)).toBe(true);
        expect(Math.max(...Array.from(grad, Math.abs))).toBeGreaterThan(0);
        if (!c.inputFd) return;
        const base = x.dataSync();
        const coords = topIndices(grad, 4);
        const eps = 1e-2;
        for (const i of coords) {
          const at = (d: number) => {
            const v = Float32Array.from(base);
            v[i] += d;
            const t = tf.tensor4d(v, x.shape);
            const s = score(t);
            t.dispose();
            return s;
          };
          const fd = (at(eps) - at(-eps)) / (2 * eps);
          expect(Math.abs(grad[i] - fd), `pixel ${i}: analytic ${grad[i]} vs finite difference ${fd}`).toBeLessThan(0.05 * Math.abs(grad[i]));
        }
      });

      it('gradients w.r.t. single activations of the last spatial layer agree with central differences', () => {
        const layer = adapter.lastSpatialLayer().name;
        const g = adapter.gradient(x, classScore(weights), layer);
        const grad = Float32Array.from(g.grad.dataSync());
        const a = Float32Array.from(g.value.dataSync());
        const shape = g.value.shape;
        tf.dispose([g.grad, g.value, g.logits]);
        // the rest of the network from a given activation, as GraphAdapter.gradient evaluates it (its private model)
        const inner = adapter as unknown as { model: tf.GraphModel; logitsNode: string; inputName: string };
        const from = (v: Float32Array) => tf.tidy(() => {
          const logits = inner.model.execute({ [inner.inputName]: x, [layer]: tf.tensor(v, shape) }, inner.logitsNode) as tf.Tensor;
          return tf.sum(tf.mul(logits, weights)).dataSync()[0];
        });
        const eps = 1e-2;
        for (const i of topIndices(grad, 4)) {
          const plus = Float32Array.from(a);
          const minus = Float32Array.from(a);
          plus[i] += eps;
          minus[i] -= eps;
          const fd = (from(plus) - from(minus)) / (2 * eps);
          expect(Math.abs(grad[i] - fd), `activation ${i}: analytic ${grad[i]} vs finite difference ${fd}`).toBeLessThan(0.05 * Math.abs(grad[i]));
        }
      });

      it('gradients at the last spatial layer agree with central differences (chain rule along a random input direction)', () => {
        const layer = adapter.lastSpatialLayer().name;
        const g = adapter.gradient(x, classScore(weights), layer);
        expect(g.grad.shape).toEqual([2, ...c.lastShape.slice(1)] as number[]);
        const eps = 1e-3;
        const u = direction(x.shape, 3);
        const [xp, xm] = tf.tidy(() => [tf.add(x, tf.mul(u, eps)), tf.sub(x, tf.mul(u, eps))] as tf.Tensor4D[]);
        const at = (xx: tf.Tensor4D) => {
          const { logits, activations } = adapter.forward(xx, [layer]);
          const s = tf.tidy(() => tf.sum(tf.mul(logits, weights)).dataSync()[0]);
          logits.dispose();
          return { s, a: activations.get(layer)! };
        };
        const p = at(xp);
        const m = at(xm);
        const fd = (p.s - m.s) / (2 * eps);
        const chain = tf.tidy(() => tf.sum(tf.mul(g.grad, tf.div(tf.sub(p.a, m.a), 2 * eps))).dataSync()[0]);
        expect(Math.abs(chain - fd), `chain ${chain} vs finite difference ${fd}`).toBeLessThan(2e-2 * Math.max(1, Math.abs(fd)));
        tf.dispose([g.grad, g.value, g.logits, u, xp, xm, p.a, m.a]);
      });

      it(c.cam ? `CAM finds the ${c.cam} head` : 'CAM is refused with the reason (no linear head on the pooling)', () => {
        const found = findCamHead(adapter);
        if (c.cam) {
          expect(found.ok && found.head.kind).toBe(c.cam);
          if (found.ok) expect(found.head.mapLayer).toBe('/classifier/classifier.2/Relu');
        } else {
          expect(found.ok).toBe(false);
          if (!found.ok) expect(found.problem).toMatch(/the dense layer "\/classifier\/classifier\.3\/Gemm\/matmul" is not fed by global average pooling/);
        }
      });

      it('the guided ReLU rule changes the input gradient; the vanilla one is restored', async () => {
        const grad = () => {
          const g = adapter.gradient(x, classScore(weights), 'input');
          const v = Float32Array.from(g.grad.dataSync());
          tf.dispose([g.grad, g.value, g.logits]);
          return v;
        };
        const vanilla = grad();
        const guided = await withReluRule('guided', grad);
        expect(maxAbsDiff(vanilla, guided)).toBeGreaterThan(1e-4 * Math.max(...Array.from(vanilla, Math.abs)));
        expect(maxAbsDiff(vanilla, grad())).toBe(0);
      });

      it('randomizing the last two parameterised layers changes the logits and restores them exactly', async () => {
        const before = tf.tidy(() => adapter.forward(x).logits.dataSync().slice());
        const names = adapter.layers.filter((l) => l.params > 0).slice(-2).map((l) => l.name);
        const during = await adapter.withRandomizedLayers(names, 7, () => tf.tidy(() => adapter.forward(x).logits.dataSync().slice()));
        const after = tf.tidy(() => adapter.forward(x).logits.dataSync().slice());
        expect(maxAbsDiff(before, during)).toBeGreaterThan(1e-3);
        expect(Array.from(after)).toEqual(Array.from(before));
      });
    });
  }
});
