/**
 * The CAM base (methods/cam-base.ts): a variant that supplies only its weights gets the options,
 * the check, the gradient, the ReLU, the upsampling and the writing. Checked with a Layer-CAM-like
 * variant (per-position weights ReLU(G)) on a hand-weighted model, where
 * y_c = sum_k W[k][c] mean(A_k) with A_0 = x, A_1 = -x, so G_k = W[k][c] / 16 everywhere and
 *   L_c = ReLU( sum_k ReLU(W[k][c] / 16) A_k )       (Grad-CAM: ReLU( sum_k W[k][c] / 16 A_k )).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { defineCamMethod } from '../../pipeline/methods/cam-base.ts';
import { gradCamMaps } from '../../pipeline/methods/grad-cam.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';

/** K = 2 channels, 3 classes (a 1x1 convolution to as many maps as classes would be read as a NiN head). */
const W = [[2, -1, 0.5], [-1, 3, 0]];

/** 4x4x1 input -> 1x1 conv "feat" [1, -1] -> GAP "gap" -> dense "fc" (W, no bias). */
function handModel() {
  const input = tf.input({ shape: [4, 4, 1] });
  const feat = tf.layers.conv2d({ filters: 2, kernelSize: 1, useBias: false, name: 'feat', weights: [tf.tensor4d([1, -1], [1, 1, 1, 2])] }).apply(input) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(feat) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, useBias: false, name: 'fc', weights: [tf.tensor2d(W)] }).apply(gap) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

const layerCam = defineCamMethod({
  id: 'layer-cam',
  title: 'Layer-CAM',
  paper: 'Jiang et al. 2021, LayerCAM: Exploring Hierarchical Class Activation Maps for Localization',
  channelWeights: (_A, G) => tf.relu(G),
});

const xs = [1, -2, 3, -4, 5, -6, 7, -8, 0, 1, 0, -1, 2, 2, -2, -2];

describe('the CAM base', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('a variant that gives only its weights is a whole method: shared options, needs and check', () => {
    const model = handModel();
    expect(Object.keys(layerCam.options.shape)).toEqual(['enabled', 'layer', 'target', 'opacity']);
    expect(layerCam.options.parse({})).toEqual({ enabled: true, target: 'top-1', opacity: 0.5 });
    expect(layerCam.needs).toEqual({ spatialLayer: true });
    expect(layerCam.perSample).toBe(true);
    const problems = layerCam.check!(layerCam.options.parse({ layer: 'gap', target: 7 }), model, ['a', 'b', 'c']);
    expect(problems.map((p) => p.key)).toEqual(['layer', 'target']);
    expect(problems[0].message).toBe('layer "gap" has output shape [null, 2]; Layer-CAM needs a spatial layer [batch, height, width, channels]; nearest spatial: feat');
    model.dispose();
  });

  it('maps are ReLU(sum_k w_k * A_k) with the variant\'s weights, by hand, written under the variant\'s id', async () => {
    const model = handModel();
    const input = tf.tensor4d([...xs, ...xs], [2, 4, 4, 1]);
    const ctx = await methodContext(model, input, { targets: [0, 1] });
    const arts = (await runMethod(layerCam, ctx, { layer: 'feat' })).filter((a) => a.id.endsWith('/heatmap'));
    expect(arts.map((a) => [a.id, a.class, a.layer, a.title])).toEqual([
      ['layer-cam/s0/0/heatmap', 0, 'feat', 'Layer-CAM for "class 0" at feat'],
      ['layer-cam/s1/1/heatmap', 1, 'feat', 'Layer-CAM for "class 1" at feat'],
    ]);
    // class 0: w = [2, 0] / 16 -> ReLU(2x / 16); class 1: w = [0, 3] / 16 -> ReLU(-3x / 16)
    const expected = [xs.map((v) => Math.max(0, (2 * v) / 16)), xs.map((v) => Math.max(0, (-3 * v) / 16))];
    for (let i = 0; i < 2; i++) {
      const raw = await readRaw(ctx, arts[i]);
      expect(raw.shape).toEqual([4, 4]);
      Array.from(raw.data).forEach((v, j) => expect(v).toBeCloseTo(expected[i][j], 6));
    }
    // Grad-CAM's channel means give other maps here: ReLU(3x / 16) for class 0
    const gc = gradCamMaps({ model, input }, 'feat', [0, 1]);
    Array.from(gc.raw.dataSync().slice(0, 16)).forEach((v, j) => expect(v).toBeCloseTo(Math.max(0, (3 * xs[j]) / 16), 6));
    tf.dispose([gc.raw, gc.upsampled, input]);
    model.dispose();
  });
});
