import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { gradCamMaps } from '../../pipeline/methods/grad-cam.ts';
import { GRAD_CAM_PP_EPS, gradCamPlusPlus } from '../../pipeline/methods/grad-cam-plus-plus.ts';
import { classScore } from '../../pipeline/model/adapter.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { darknetInput, FIXTURES, haveDarknet, loadDarknet } from '../helpers/darknet.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';

if (!haveDarknet) console.warn(`skipping the Darknet Tiny Grad-CAM++ test: ${FIXTURES} is absent`);

const heatmaps = <T extends { id: string }>(artifacts: T[]) => artifacts.filter((a) => a.id.endsWith('/heatmap'));

/** [4, 4, cin] -> 1x1 conv "feat" (kernel [cin, K], no bias) -> GAP -> dense "fc" (W [K, C], no bias). */
function linearHead(feat: number[][], W: number[][]) {
  const cin = feat.length;
  const K = feat[0].length;
  const input = tf.input({ shape: [4, 4, cin] });
  const f = tf.layers.conv2d({ filters: K, kernelSize: 1, useBias: false, name: 'feat', weights: [tf.tensor4d(feat.flat(), [1, 1, cin, K])] }).apply(input) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(f) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: W[0].length, useBias: false, name: 'fc', weights: [tf.tensor2d(W)] }).apply(gap) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

/** pytorch-grad-cam's GradCAMPlusPlus in float64 on one example: A, g [h*w][K]. */
function reference(A: number[][], g: number[][]): number[] {
  const K = A[0].length;
  const sumA = Array.from({ length: K }, (_, k) => A.reduce((s, a) => s + a[k], 0));
  const w = Array.from({ length: K }, (_, k) => g.reduce((s, gp) => {
    const gk = gp[k];
    const alpha = gk === 0 ? 0 : gk ** 2 / (2 * gk ** 2 + sumA[k] * gk ** 3 + GRAD_CAM_PP_EPS);
    return s + Math.max(gk, 0) * alpha;
  }, 0));
  return A.map((a) => Math.max(0, a.reduce((s, v, k) => s + w[k] * v, 0)));
}

describe('grad-cam-plus-plus', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('matches the hand-computed alphas and weights on a linear GAP head (gradients constant per channel)', async () => {
    // A0 = x, A1 = -x, A2 = x/2; y_c = sum_k W[k][c] mean(A_k), so g_k = W[k][c] / 16 at every position and
    // alpha_k = g_k^2 / (2 g_k^2 + S_k g_k^3 + eps), S_k = sum A_k; w_k = 16 relu(g_k) alpha_k; L = relu(sum_k w_k A_k)
    const W = [[2, -1], [0.5, 3], [-1, 1]];
    const model = linearHead([[1, -1, 0.5]], W);
    const xs = [1, -2, 3, -0.5, 0.5, -1, 2, 0.25, 0, 1, 0, -1, 2, 0.5, -0.5, -1.25];
    const input = tf.tensor4d([...xs, ...xs], [2, 4, 4, 1]);
    const ctx = await methodContext(model, input, { targets: [0, 1] });
    const arts = heatmaps(await runMethod(gradCamPlusPlus, ctx));
    expect(arts.map((a) => [a.class, a.layer])).toEqual([[0, 'feat'], [1, 'feat']]);
    const sx = xs.reduce((s, v) => s + v, 0);
    const a = [1, -1, 0.5];
    for (const c of [0, 1]) {
      const w = a.map((ak, k) => {
        const g = W[k][c] / 16;
        const alpha = g ** 2 / (2 * g ** 2 + ak * sx * g ** 3 + GRAD_CAM_PP_EPS);
        return 16 * Math.max(g, 0) * alpha;
      });
      const expected = xs.map((x) => Math.max(0, a.reduce((s, ak, k) => s + w[k] * ak * x, 0)));
      const raw = Array.from((await readRaw(ctx, arts[c])).data);
      expect(Math.max(...expected)).toBeGreaterThan(0);
      raw.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
    }
    input.dispose();
    model.dispose();
  });

  it('equals Grad-CAM times h*w / (2 + t) when every alpha is the constant 1 / (2 + t)', async () => {
    // With g_k constant per channel (linear GAP head) and g_k > 0, alpha_k = 1 / (2 + g_k S_k + eps / g_k^2).
    // Choosing W[k][0] = 16 t / S_k for the test input makes g_k S_k = t for every k, so every alpha is
    // 1 / (2 + t) (eps / g_k^2 < 1e-4 here) and w_k = 16 g_k / (2 + t): Grad-CAM++ = 16 / (2 + t) * Grad-CAM.
    const feat = [[1, 0.25, 2], [0.5, 1.5, 0.25]];
    const x = Array.from({ length: 32 }, (_, i) => ((i * 7) % 11) / 10);
    const S = [0, 1, 2].map((k) => Array.from({ length: 16 }, (_, p) => x[p * 2] * feat[0][k] + x[p * 2 + 1] * feat[1][k]).reduce((s, v) => s + v, 0));
    const t = 1.5;
    const W = S.map((Sk, k) => [(16 * t) / Sk, [1, 3, 0.2][k]]);
    const model = linearHead(feat, W);
    const input = tf.tensor4d([...x, ...x], [2, 4, 4, 2]);
    const ctx = await methodContext(model, input, { targets: [0, 1] });
    const arts = heatmaps(await runMethod(gradCamPlusPlus, ctx));
    const gc = gradCamMaps({ model, input }, 'feat', [0, 1]);
    const grad = (await gc.raw.array()) as number[][][];
    tf.dispose([gc.raw, gc.upsampled]);
    const pp0 = Array.from((await readRaw(ctx, arts[0])).data);
    const g0 = grad[0].flat();
    expect(Math.max(...g0)).toBeGreaterThan(0);
    pp0.forEach((v, i) => expect(Math.abs(v - (16 / (2 + t)) * g0[i]) / Math.max(...pp0)).toBeLessThan(1e-4));
    // class 1 has g_k S_k different per channel: no longer proportional (the check above can fail)
    const pp1 = Array.from((await readRaw(ctx, arts[1])).data);
    const ratios = pp1.map((v, i) => v / grad[1].flat()[i]).filter(Number.isFinite);
    expect(Math.max(...ratios) - Math.min(...ratios)).toBeGreaterThan(0.01 * Math.max(...ratios));
    input.dispose();
    model.dispose();
  });

  it('follows pytorch-grad-cam where the gradient varies over positions (random ReLU network)', async () => {
    const seeded = (seed: number) => tf.initializers.glorotUniform({ seed });
    const input = tf.input({ shape: [8, 8, 3] });
    const c1 = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: seeded(21) }).apply(input) as tf.SymbolicTensor;
    const c2 = tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2', kernelInitializer: seeded(22) }).apply(c1) as tf.SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({}).apply(c2) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 3, name: 'fc', kernelInitializer: seeded(23) }).apply(gap) as tf.SymbolicTensor;
    const model = new LayersAdapter(tf.model({ inputs: input, outputs: out }));
    const x = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 24) as tf.Tensor4D;
    const targets = [1, 2];
    const ctx = await methodContext(model, x, { targets });
    const arts = heatmaps(await runMethod(gradCamPlusPlus, ctx, { layer: 'c1' }));
    const onehot = tf.oneHot(targets, 3).toFloat() as tf.Tensor2D;
    const r = model.gradient(x, classScore(onehot), 'c1');
    const A = (await r.value.array()) as number[][][][];
    const g = (await r.grad.array()) as number[][][][];
    tf.dispose([onehot, r.grad, r.value, r.logits]);
    for (let i = 0; i < 2; i++) {
      const expected = reference(A[i].flat(), g[i].flat());
      // the gradient is not constant per channel here
      const gk0 = g[i].flat().map((v) => v[0]);
      expect(Math.max(...gk0)).toBeGreaterThan(Math.min(...gk0));
      const raw = Array.from((await readRaw(ctx, arts[i])).data);
      const scale = Math.max(...expected);
      expect(scale).toBeGreaterThan(0);
      raw.forEach((v, j) => expect(Math.abs(v - expected[j]) / scale).toBeLessThan(1e-4));
    }
    x.dispose();
    model.dispose();
  });

  it('rejects a layer without a spatial output', () => {
    const model = linearHead([[1]], [[1, 2]]);
    const problems = gradCamPlusPlus.check!(gradCamPlusPlus.options.parse({ layer: 'fc' }), model);
    expect(problems).toEqual([{ key: 'layer', message: 'layer "fc" has output shape [null, 2]; Grad-CAM++ needs a spatial layer [batch, height, width, channels]; nearest spatial: feat' }]);
    expect(gradCamPlusPlus.check!(gradCamPlusPlus.options.parse({ layer: 'fet' }), model)[0].message).toContain('no layer "fet"; nearest: feat');
    model.dispose();
  });

  it.skipIf(!haveDarknet)('runs on the real Darknet Tiny for chelsea.png', async () => {
    const { model, labels } = await loadDarknet();
    const input = await darknetInput('chelsea.png');
    const ctx = await methodContext(model, input, { classes: labels });
    const arts = heatmaps(await runMethod(gradCamPlusPlus, ctx));
    expect(arts).toHaveLength(1);
    expect(arts[0]).toMatchObject({ className: 'Egyptian cat', layer: 'leaky_re_lu_15' });
    const raw = await readRaw(ctx, arts[0]);
    expect(raw.shape).toEqual([14, 14]);
    expect(raw.data.every(Number.isFinite)).toBe(true);
    expect(Math.max(...raw.data)).toBeGreaterThan(Math.min(...raw.data));
    input.dispose();
    model.dispose();
  });
});
