import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { gradCamMaps } from '../../pipeline/methods/grad-cam.ts';
import { signedImage } from '../../pipeline/methods/attribution.ts';
import { guidedGradCam } from '../../pipeline/methods/guided-grad-cam.ts';
import { classScore } from '../../pipeline/model/adapter.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { withReluRule } from '../../pipeline/model/relu-rules.ts';
import { darknetInput, FIXTURES, haveDarknet, loadDarknet } from '../helpers/darknet.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';

if (!haveDarknet) console.warn(`skipping the Darknet Tiny Guided Grad-CAM test: ${FIXTURES} is absent`);

const seeded = (seed: number) => tf.initializers.glorotUniform({ seed });

/** 8x8x3 -> conv relu "c1" -> conv relu "c2" (stride 2) -> GAP -> dense 3. */
function reluNet() {
  const input = tf.input({ shape: [8, 8, 3] });
  const c1 = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: seeded(31), biasInitializer: tf.initializers.constant({ value: 0.05 }) }).apply(input) as tf.SymbolicTensor;
  const c2 = tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'c2', kernelInitializer: seeded(32) }).apply(c1) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({}).apply(c2) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, name: 'fc', kernelInitializer: seeded(33) }).apply(gap) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

describe('guided-grad-cam', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('is the guided-backprop gradient times the upsampled Grad-CAM, elementwise', async () => {
    const model = reluNet();
    const x = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 34) as tf.Tensor4D;
    const targets = [0, 2];
    const ctx = await methodContext(model, x, { targets });
    const arts = await runMethod(guidedGradCam, ctx);
    expect(arts.map((a) => a.id)).toEqual([
      'guided-grad-cam/s0/0/gradient', 'guided-grad-cam/s1/2/gradient',
      'guided-grad-cam/s0/0/heatmap', 'guided-grad-cam/s0/0/overlay', 'guided-grad-cam/s1/2/heatmap', 'guided-grad-cam/s1/2/overlay',
    ]);
    expect(arts[0]).toMatchObject({ method: 'guided-grad-cam', image: 's0', class: 0, layer: 'c2', width: 8, height: 8 });
    expect(arts[0].raw?.shape).toEqual([8, 8, 3]);
    expect(arts[2].raw?.shape).toEqual([8, 8]);

    // the two factors, computed separately
    const onehot = tf.oneHot(targets, 3).toFloat() as tf.Tensor2D;
    const guided = await withReluRule('guided', () => model.gradient(x, classScore(onehot), 'input'));
    const vanilla = model.gradient(x, classScore(onehot), 'input');
    const cam = gradCamMaps({ model, input: x }, 'c2', targets);
    const G = (await guided.grad.array()) as number[][][][];
    const V = (await vanilla.grad.array()) as number[][][][];
    const L = (await cam.upsampled.array()) as number[][][];
    tf.dispose([onehot, guided.grad, guided.value, guided.logits, vanilla.grad, vanilla.value, vanilla.logits, cam.raw, cam.upsampled]);
    // the guided rule matters on this network (the test would notice the plain gradient)
    const gv = G.flat(3).map((v, i) => Math.abs(v - V.flat(3)[i]));
    expect(Math.max(...gv)).toBeGreaterThan(1e-3);

    for (let i = 0; i < 2; i++) {
      const expected = G[i].flatMap((row, y) => row.flatMap((px, xx) => px.map((g) => g * L[i][y][xx])));
      const raw = Array.from((await readRaw(ctx, arts[i])).data);
      const scale = Math.max(...expected.map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      raw.forEach((v, j) => expect(Math.abs(v - expected[j]) / scale).toBeLessThan(1e-5));
      // Grad-CAM is zero somewhere and the product is zero there
      expect(raw.filter((v) => v === 0).length).toBeGreaterThan(0);
      // the magnitude map is max_c |G|
      const mag = Array.from((await readRaw(ctx, arts[2 + 2 * i])).data);
      mag.forEach((m, p) => expect(m).toBeCloseTo(Math.max(...raw.slice(p * 3, p * 3 + 3).map(Math.abs)), 6));
    }
    x.dispose();
    model.dispose();
  });

  it('draws signed images with pytorch-grad-cam deprocess_image, one scale for all channels', () => {
    // values 0, 1, 2, 3, 4, 5 (two RGB pixels): mean 2.5, std sqrt(35/12)
    const v = Float32Array.from([0, 1, 2, 3, 4, 5]);
    const std = Math.sqrt(35 / 12);
    const to8 = (x: number) => Math.round(Math.min(1, Math.max(0, 0.5 + (0.1 * (x - 2.5)) / (std + 1e-5))) * 255);
    expect(signedImage(v, 3, 'rgb')).toEqual({ pixels: Uint8Array.from([0, 1, 2, 3, 4, 5].map(to8)), channels: 3 });
    expect(Array.from(signedImage(v, 3, 'bgr').pixels)).toEqual([2, 1, 0, 5, 4, 3].map(to8));
    // one channel: gray, 0.5 -+ 0.1 / (1 + 1e-5) -> 102, 153
    expect(signedImage(Float32Array.from([-1, 1]), 1, 'rgb')).toEqual({ pixels: Uint8Array.from([102, 153]), channels: 1 });
    // two channels: their mean as gray: (-1 + -1) / 2, (1 + 1) / 2
    expect(signedImage(Float32Array.from([-1, -1, 1, 1]), 2, 'rgb')).toEqual({ pixels: Uint8Array.from([102, 153]), channels: 1 });
    // zero everywhere: mid gray
    expect(Array.from(signedImage(new Float32Array(3), 3, 'rgb').pixels)).toEqual([128, 128, 128]);
  });

  it.skipIf(!haveDarknet)('runs on the real Darknet Tiny for chelsea.png', async () => {
    const { model, labels } = await loadDarknet();
    const input = await darknetInput('chelsea.png');
    const ctx = await methodContext(model, input, { classes: labels });
    const arts = await runMethod(guidedGradCam, ctx);
    const gradient = arts.find((a) => a.id.endsWith('/gradient'))!;
    const heat = arts.find((a) => a.id.endsWith('/heatmap'))!;
    expect(gradient).toMatchObject({ className: 'Egyptian cat', layer: 'leaky_re_lu_15', width: 224, height: 224 });
    for (const a of [gradient, heat]) {
      const raw = await readRaw(ctx, a);
      expect(raw.data.every(Number.isFinite)).toBe(true);
      const lo = raw.data.reduce((m, v) => Math.min(m, v), Infinity);
      const hi = raw.data.reduce((m, v) => Math.max(m, v), -Infinity);
      expect(hi).toBeGreaterThan(lo);
    }
    expect((await readRaw(ctx, gradient)).shape).toEqual([224, 224, 3]);
    input.dispose();
    model.dispose();
  });
});
