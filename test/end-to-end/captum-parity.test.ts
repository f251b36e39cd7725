/**
 * A PyTorch model exported to ONNX gives Captum's and pytorch-grad-cam's maps. The references in
 * test/fixtures/torch-mini/reference.json were computed in PyTorch on the exported weights (see
 * its README): Captum's Saliency (abs, max over channels), GuidedBackprop, Deconvolution,
 * IntegratedGradients (riemann_right, 8 steps, zero baseline) and pytorch-grad-cam's GradCAM
 * weights at the last activation, before its resize; CAM on its GAP + Gemm head equals that
 * Grad-CAM up to ReLU and scale. The model has a ReLU6, a ReLU and a
 * LeakyReLU: Captum's rules replace the backward pass of nn.ReLU alone, so this pins that
 * convention too.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { METHODS } from '../../pipeline/methods/registry.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { findCamHead } from '../../pipeline/methods/cam.ts';
import type { MethodDef } from '../../pipeline/methods/types.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';

const DIR = resolve(import.meta.dirname, '../fixtures/torch-mini');
const ref = JSON.parse(readFileSync(resolve(DIR, 'reference.json'), 'utf8')) as Record<string, unknown> & { x: number[][][][]; targets: number[]; logits: number[][] };

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) { ma += a[i]; mb += b[i]; }
  ma /= n; mb /= n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) { const da = a[i] - ma, db = b[i] - mb; sab += da * db; saa += da * da; sbb += db * db; }
  return sab / Math.sqrt(saa * sbb);
}

describe('maps of an ONNX export equal Captum\'s and pytorch-grad-cam\'s', () => {
  let model: ModelAdapter;
  let x: tf.Tensor4D;
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    model = (await loadModel(resolve(DIR, 'model.onnx'))).adapter;
    x = tf.transpose(tf.tensor4d(ref.x), [0, 2, 3, 1]) as tf.Tensor4D;
  });
  afterAll(() => {
    model?.dispose();
    x?.dispose();
  });

  it('reproduces PyTorch\'s logits', () => {
    const { logits } = model.forward(x);
    const got = logits.arraySync() as number[][];
    logits.dispose();
    got.flat().forEach((v, i) => expect(v).toBeCloseTo(ref.logits.flat()[i], 5));
  });

  for (const [id, key, opts, rank] of [
    ['saliency', 'saliency', { variant: 'abs-max' }, 2],
    ['guided-backprop', 'guided', {}, 3],
    ['deconvnet', 'deconv', {}, 3],
    ['integrated-gradients', 'ig', { steps: 8 }, 3],
    ['grad-cam', 'gradcam', { layer: '/act3/LeakyRelu' }, 2],
  ] as const) {
    it(`${id}: Pearson >= 0.99999 with the reference, largest difference under 1e-4 of its range`, async () => {
      const method = (METHODS as readonly MethodDef[]).find((m) => m.id === id)!;
      const ctx = await methodContext(model, x, { targets: ref.targets });
      await runMethod(method, ctx, opts);
      const arts = ctx.out.artifacts.filter((a) => a.raw && a.raw.shape.length === rank);
      expect(arts.map((a) => a.image)).toEqual(ctx.samples.map((s) => s.id));
      const got: number[] = [];
      for (const a of arts) got.push(...Array.from((await readRaw(ctx, a)).data));
      const want = (ref[key] as unknown[]).flat(4) as number[];
      expect(got.length).toBe(want.length);
      expect(pearson(got, want)).toBeGreaterThanOrEqual(0.99999);
      const range = Math.max(...want) - Math.min(...want);
      expect(range).toBeGreaterThan(0);
      expect(Math.max(...got.map((v, i) => Math.abs(v - want[i])))).toBeLessThan(1e-4 * range);
    });
  }

  it('CAM finds the GAP + Gemm head and equals pytorch-grad-cam\'s Grad-CAM up to ReLU and scale: Grad-CAM = ReLU(CAM) / (h w)', async () => {
    const found = findCamHead(model);
    expect(found.ok && found.head.kind).toBe('gap+dense');
    const method = (METHODS as readonly MethodDef[]).find((m) => m.id === 'cam')!;
    const ctx = await methodContext(model, x, { targets: ref.targets });
    await runMethod(method, ctx, {});
    const arts = ctx.out.artifacts.filter((a) => a.raw && a.raw.shape.length === 2);
    expect(arts.map((a) => a.image)).toEqual(ctx.samples.map((s) => s.id));
    const cam: number[] = [];
    for (const a of arts) cam.push(...Array.from((await readRaw(ctx, a)).data));
    const want = (ref.gradcam as number[][][]).flat(2);
    expect(cam.length).toBe(want.length);
    cam.forEach((v, i) => expect(Math.max(v, 0) / 64).toBeCloseTo(want[i], 6));
  });
});
