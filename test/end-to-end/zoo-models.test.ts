/**
 * Converter outputs of common architectures (../shared/fixtures/zoo, 5 architectures x LayersModel
 * and GraphModel, random weights; and test/fixtures/keras2-vocab, the Keras 2 layers tfjs lacks),
 * loaded as a user would: the outputs reproduce Keras' to 1e-4; the head is what the model ends
 * in; every method that needs no dataset runs and writes finite maps; input gradients agree with
 * central differences along random directions, and so do the gradients at the last spatial layer
 * (checked through the chain rule: that layer is a cut of the graph, so d f(x + t u)/dt =
 * <df/dA, dA(x + t u)/dt>); the two formats of one architecture give the same saliency and
 * Grad-CAM maps; CAM is found on global-average-pooling heads and refused, with the reason,
 * elsewhere.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bridgedKernels, initBackend } from '../../pipeline/backend.ts';
import { withReluRule } from '../../pipeline/model/relu-rules.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { unmetNeed } from '../../pipeline/methods/needs.ts';
import { METHODS } from '../../pipeline/methods/registry.ts';
import type { MethodDef } from '../../pipeline/methods/types.ts';
import { classScore, type ModelAdapter } from '../../pipeline/model/adapter.ts';
import { BINARY_POSITIVE, type HeadKind } from '../../pipeline/model/head.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import type { Artifact } from '../../pipeline/manifest.ts';
import { maxAbsDiff } from '../helpers/finite-diff.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';

const ZOO = resolve(import.meta.dirname, '../../../shared/fixtures/zoo');
const VOCAB = resolve(import.meta.dirname, '../fixtures/keras2-vocab');
const haveZoo = existsSync(resolve(ZOO, 'README.md'));
if (!haveZoo) console.warn(`skipping the zoo tests: ${ZOO} is absent`);

interface Case {
  arch: string;
  format: 'layers' | 'graph';
  dir: string;
  reference: string;
  head: HeadKind;
  /** CAM applies (a global-average-pooling head). */
  cam: boolean;
  /** Grad-CAM's layer, where not the default. */
  gradCamLayer?: string;
}

/**
 * `gradCam`: the layer to compare Grad-CAM at, where the two formats' last spatial layers differ.
 * In logits_head's graph, TensorFlow's optimizer moved the ELU after the global max pooling
 * (max(elu(x)) = elu(max(x))), so the graph has no post-ELU spatial tensor.
 */
const ARCHS: { arch: string; head: HeadKind; cam: boolean; gradCam?: { layers: string; graph: string } }[] = [
  { arch: 'mini_resnet', head: 'softmax', cam: true },
  { arch: 'mobilenet_v2', head: 'softmax', cam: true },
  { arch: 'mobilenet_v3_small', head: 'softmax', cam: false },
  { arch: 'binary_sigmoid', head: 'binary', cam: false },
  { arch: 'logits_head', head: 'logits', cam: false, gradCam: { layers: 'leaky_re_lu_1', graph: 'StatefulPartitionedCall/logits_head/leaky_re_lu_1/LeakyRelu' } },
];

const CASES: Case[] = [
  ...ARCHS.flatMap(({ arch, head, cam, gradCam }) => (['layers', 'graph'] as const).map((format) => ({
    arch, format, head, cam, gradCamLayer: gradCam?.[format], dir: resolve(ZOO, `${arch}-${format}`), reference: resolve(ZOO, `${arch}-${format}/reference.json`),
  }))),
  // the LayersModel's Reshape is a TFOpLambda (tf.reshape), which CAM does not see through; the graph's Reshape op it does
  { arch: 'keras2_vocab', format: 'layers', head: 'softmax', cam: false, dir: resolve(VOCAB, 'layers'), reference: resolve(VOCAB, 'reference.json') },
  { arch: 'keras2_vocab', format: 'graph', head: 'softmax', cam: true, dir: resolve(VOCAB, 'graph'), reference: resolve(VOCAB, 'reference.json') },
];

/** The converter dropped these weights (layer names with "/"): refused with the reason, not explained. */
const BROKEN = new Set(['mobilenet_v3_small/layers']);

/** Cheap settings for the methods that cost many passes; everything else at its defaults. */
const CHEAP: Record<string, Record<string, unknown>> = {
  'integrated-gradients': { steps: 8 },
  smoothgrad: { n: 3 },
  'class-visualization': { classes: [0], steps: 3 },
  occlusion: { size: 16, stride: 16 },
  activations: { maxLayers: 2, maxChannels: 8 },
};

const PER_SAMPLE = (METHODS as readonly MethodDef[]).filter((m) => !m.needs.dataset);

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) { ma += a[i] / n; mb += b[i] / n; }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** Kernels that the input and last-spatial-layer gradients run, under every ReLU rule. */
async function gradientKernels(adapter: ModelAdapter, x: tf.Tensor4D, w: tf.Tensor2D): Promise<Set<string>> {
  const used = new Set<string>();
  for (const rule of ['standard', 'guided', 'deconvnet'] as const) {
    for (const wrt of ['input', adapter.lastSpatialLayer().name]) {
      const prof = await withReluRule(rule, () => tf.profile(() => {
        const g = adapter.gradient(x, classScore(w), wrt);
        tf.dispose([g.grad, g.value, g.logits]);
      }));
      prof.kernelNames.forEach((k) => used.add(k));
    }
  }
  return used;
}

/** A seeded direction of unit RMS, shaped like t. */
const direction = (shape: number[], seed: number) => tf.tidy(() => {
  const v = tf.randomNormal(shape, 0, 1, 'float32', seed);
  return tf.div(v, tf.sqrt(tf.mean(tf.square(v))));
});

describe.skipIf(!haveZoo)('converted models of common architectures', () => {
  const loaded = new Map<string, ModelAdapter>();
  const maps = new Map<string, Artifact[] & { read?: (a: Artifact) => Promise<Float32Array> }>();
  const refs = new Map<string, { x: tf.Tensor4D; y: number[][] }>();
  /** Targets per architecture: the LayersModel's top-1 (or the graph's), shared by both formats. */
  const targets = new Map<string, number[]>();

  beforeAll(async () => {
    tf.enableProdMode();
    await initBackend('wasm', silentLogger);
  });
  afterAll(() => {
    for (const m of loaded.values()) m.dispose();
    for (const r of refs.values()) r.x.dispose();
  });

  for (const c of CASES) {
    const key = `${c.arch}/${c.format}`;
    describe(key, () => {
      if (BROKEN.has(key)) {
        it('is refused with the reason: its weight files lack the batch-norm weights the converter dropped', async () => {
          const err = await loadModel(c.dir).then(() => undefined, (e: unknown) => e);
          expect(err).toBeInstanceOf(ConvlensError);
          expect((err as Error).message).toMatch(/hold no values for \d+ weights of \d+ layers \(Conv\/BatchNorm, .*drops the weights of Keras layers whose names contain "\/"/);
          expect((err as ConvlensError).hint).toMatch(/GraphModel/);
        });
        return;
      }

      it('loads and reproduces the reference outputs to 1e-4, with the right head', async () => {
        const { adapter } = await loadModel(c.dir);
        loaded.set(key, adapter);
        const ref = JSON.parse(readFileSync(c.reference, 'utf8')) as { x: number[][][][]; y: number[][] };
        const x = tf.tensor4d(ref.x);
        refs.set(key, { x, y: ref.y });
        expect(adapter.head.kind).toBe(c.head);
        const out = tf.tidy(() => {
          const { logits } = adapter.forward(x);
          // compare with Keras' outputs: after its own softmax or sigmoid, or the logits where it has none
          const y = adapter.head.activation === 'none' ? logits : adapter.probabilities(x);
          return adapter.head.kind === 'binary' ? tf.slice(y, [0, BINARY_POSITIVE], [-1, 1]) : y;
        });
        const got = (await out.array()) as number[][];
        out.dispose();
        got.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - ref.y[i][j]), `y[${i}][${j}]`).toBeLessThan(1e-4)));
        if (adapter.head.kind === 'binary') {
          const p = tf.tidy(() => adapter.probabilities(x).arraySync()) as number[][];
          for (const row of p) expect(row[0] + row[1]).toBeCloseTo(1, 6);
        }
        const t = targets.get(c.arch) ?? tf.tidy(() => Array.from(tf.argMax(adapter.forward(x).logits, 1).dataSync()));
        if (adapter.head.kind === 'binary') t.fill(BINARY_POSITIVE);
        targets.set(c.arch, t);
      });

      it('input gradients agree with central differences along random directions', () => {
        const adapter = loaded.get(key)!;
        const { x } = refs.get(key)!;
        const target = targets.get(c.arch)!;
        const weights = tf.tidy(() => tf.oneHot(tf.tensor1d(target, 'int32'), adapter.numClasses).toFloat() as tf.Tensor2D);
        const f = (xx: tf.Tensor4D) => tf.tidy(() => tf.sum(tf.mul(adapter.forward(xx).logits, weights)).dataSync()[0]);
        const g = adapter.gradient(x, classScore(weights), 'input');
        for (const seed of [1, 2]) {
          const u = direction(x.shape, seed);
          // small enough that few max-pool switches and ReLU kinks lie inside +-eps, large enough for float32
          const eps = 1e-3;
          const [xp, xm] = tf.tidy(() => [tf.add(x, tf.mul(u, eps)), tf.sub(x, tf.mul(u, eps))] as tf.Tensor4D[]);
          const fd = (f(xp) - f(xm)) / (2 * eps);
          const an = tf.tidy(() => tf.sum(tf.mul(g.grad, u)).dataSync()[0]);
          expect(Math.abs(an - fd), `analytic ${an} vs finite difference ${fd}`).toBeLessThan(2e-2 * Math.max(1, Math.abs(fd)));
          tf.dispose([u, xp, xm]);
        }
        tf.dispose([g.grad, g.value, g.logits, weights]);
      });

      it('runs no bridged cpu kernel in its gradients (input and last spatial layer, every ReLU rule)', async () => {
        const adapter = loaded.get(key)!;
        const { x } = refs.get(key)!;
        const w = tf.tidy(() => tf.oneHot(tf.tensor1d(targets.get(c.arch)!, 'int32'), adapter.numClasses).toFloat() as tf.Tensor2D);
        const used = await gradientKernels(adapter, x, w);
        w.dispose();
        expect(bridgedKernels().size).toBeGreaterThan(0);
        expect([...used].filter((k) => bridgedKernels().has(k))).toEqual([]);
      });

      it('gradients at the last spatial layer agree with central differences (chain rule through that layer)', () => {
        const adapter = loaded.get(key)!;
        const { x } = refs.get(key)!;
        const layer = adapter.lastSpatialLayer().name;
        const target = targets.get(c.arch)!;
        const weights = tf.tidy(() => tf.oneHot(tf.tensor1d(target, 'int32'), adapter.numClasses).toFloat() as tf.Tensor2D);
        const g = adapter.gradient(x, classScore(weights), layer);
        const eps = 1e-3;
        const u = direction(x.shape, 3);
        const at = (xx: tf.Tensor4D) => {
          const { logits, activations } = adapter.forward(xx, [layer]);
          const score = tf.tidy(() => tf.sum(tf.mul(logits, weights)).dataSync()[0]);
          tf.dispose(logits);
          return { score, a: activations.get(layer)! };
        };
        const [xp, xm] = tf.tidy(() => [tf.add(x, tf.mul(u, eps)), tf.sub(x, tf.mul(u, eps))] as tf.Tensor4D[]);
        const p = at(xp);
        const m = at(xm);
        const fd = (p.score - m.score) / (2 * eps);
        const chain = tf.tidy(() => tf.sum(tf.mul(g.grad, tf.div(tf.sub(p.a, m.a), 2 * eps))).dataSync()[0]);
        expect(Math.abs(chain - fd), `chain ${chain} vs finite difference ${fd}`).toBeLessThan(2e-2 * Math.max(1, Math.abs(fd)));
        tf.dispose([g.grad, g.value, g.logits, weights, u, xp, xm, p.a, m.a]);
      });

      it(`runs every method that needs no dataset; CAM ${c.cam ? 'finds the GAP head' : 'is refused with the reason'}`, async () => {
        const adapter = loaded.get(key)!;
        const { x } = refs.get(key)!;
        const camNeed = unmetNeed(PER_SAMPLE.find((m) => m.id === 'cam')!, adapter);
        if (c.cam) expect(camNeed).toBeUndefined();
        else expect(camNeed).toMatch(/^CAM needs a global-average-pooling head: .*; (the dense layer|this model ends in|global average pooling)/);
        const ctx = await methodContext(adapter, x, { targets: targets.get(c.arch)!, preprocessing: { scale: 1 / 255 } });
        for (const def of PER_SAMPLE) {
          if (unmetNeed(def, adapter)) continue;
          const before = ctx.out.artifacts.length;
          await runMethod(def, ctx, { ...CHEAP[def.id], ...(def.id === 'grad-cam' && c.gradCamLayer ? { layer: c.gradCamLayer } : {}) });
          const made = ctx.out.artifacts.slice(before);
          expect(made.length, `${def.id} wrote nothing`).toBeGreaterThan(0);
          for (const a of made.filter((a) => a.raw)) {
            const raw = await readRaw(ctx, a);
            expect(raw.data.every(Number.isFinite), `${a.id} is finite`).toBe(true);
          }
        }
        const withRaw = ctx.out.artifacts.filter((a) => a.raw && a.id.endsWith('/heatmap'));
        const stored: Artifact[] & { read?: (a: Artifact) => Promise<Float32Array> } = withRaw;
        stored.read = async (a) => Float32Array.from((await readRaw(ctx, a)).data);
        maps.set(key, stored);
        // gradient maps are not constant (a dead gradient would be); Grad-CAM may rightly be all
        // zero where no channel has positive evidence for the class (its ReLU)
        for (const id of ['saliency', 'integrated-gradients']) {
          const a = withRaw.find((w) => w.method === id && w.image === 's0')!;
          const v = await stored.read(a);
          expect(Math.max(...v) - Math.min(...v), `${a.id} varies`).toBeGreaterThan(0);
        }
      }, 300_000);

      if (c.format === 'graph' && !BROKEN.has(`${c.arch}/layers`)) {
        it('gives the same saliency, Grad-CAM and guided-backprop maps as the LayersModel (Pearson >= 0.999)', async () => {
          const mine = maps.get(key)!;
          const theirs = maps.get(`${c.arch}/layers`)!;
          // guided backprop too: the ReLU rule must reach the graph's ReLUs as it reaches the layers'
          for (const method of ['saliency', 'grad-cam', 'guided-backprop']) {
            for (const image of ['s0', 's1']) {
              const a = mine.find((m) => m.method === method && m.image === image)!;
              const b = theirs.find((m) => m.method === method && m.image === image)!;
              expect(a.class).toBe(b.class);
              const [va, vb] = [await mine.read!(a), await theirs.read!(b)];
              const what = `${method} ${image}: ${a.layer ?? ''} vs ${b.layer ?? ''}`;
              if (Math.max(...va) === Math.min(...va) || Math.max(...vb) === Math.min(...vb)) {
                // a constant map (Grad-CAM with no positive evidence is all zero) has no correlation: equal values instead
                expect(maxAbsDiff(va, vb), what).toBeLessThan(1e-6);
              } else {
                expect(pearson(va, vb), what).toBeGreaterThanOrEqual(0.999);
              }
            }
          }
        });
      }
    });
  }
});

const DARKNET = resolve(import.meta.dirname, '../../../shared/fixtures/darknet-tiny');

describe.skipIf(!existsSync(resolve(DARKNET, 'model.json')))('Darknet Tiny', () => {
  it('runs no bridged cpu kernel and no Tile in its input and layer gradients, with every ReLU rule', async () => {
    await initBackend('wasm', silentLogger);
    const { adapter } = await loadModel(DARKNET);
    const x = tf.randomUniform([2, 224, 224, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const w = tf.tidy(() => tf.oneHot(tf.tensor1d([285, 967], 'int32'), adapter.numClasses).toFloat() as tf.Tensor2D);
    const used = await gradientKernels(adapter, x, w);
    expect([...used].filter((k) => bridgedKernels().has(k) || k === 'Tile')).toEqual([]);
    tf.dispose([x, w]);
    adapter.dispose();
  }, 120_000);
});
