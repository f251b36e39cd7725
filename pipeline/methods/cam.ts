import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { LayerInfo, ModelAdapter } from '../model/adapter.ts';
import { upsampleMaps } from './cam-base.ts';
import { opacityOption, writeSampleMaps } from './maps.ts';
import { scoreMatrix } from '../model/head.ts';
import { classOptionProblems, oneHotRows, targetOption, resolveTargets } from './targets.ts';
import { defineMethod, type MethodContext } from './types.ts';

/**
 * CAM, class activation mapping (Zhou et al. 2016, "Learning Deep Features for Discriminative
 * Localization"), read off the weights of a global-average-pooling head; no gradients.
 *
 * Head "gap+dense": y^c = sum_k W[k, c] * mean_ij A_ij^k + b_c, with A [n, h, w, K] the input of
 * the global average pooling and W [K, C] the dense kernel (scores are taken before the model's
 * softmax or sigmoid). The map is Zhou's
 *   CAM_c = sum_k W[k, c] * A^k                                       [h, w]
 * without the bias, as in the paper; so mean_ij CAM_c + b_c = y^c.
 * Head "class-maps+gap": the pooling input P [n, h, w, C] already has one map per class and the
 * scores are y^c = mean_ij P_ij^c (NiN, Darknet, SqueezeNet: a 1x1 convolution to C maps, then
 * GAP). The map is the class map itself,
 *   CAM_c = P^c = sum_k W[0, 0, k, c] * A^k + b_c                       (linear 1x1 conv)
 * bias included, so that mean_ij CAM_c = y^c as for the other head; the bias shifts the whole
 * map by a constant and does not change the picture. P is taken from the model's own forward
 * pass, so an activation or batch norm between the convolution and the pooling is included.
 * The weights W and maps P are per model output; a binary head's class scores are [-z, z]
 * (model/head.ts), so its classes take -W and W (scores = outputs M, CAM_c = sum_u M[u, c] CAM_u).
 * A final softmax or sigmoid is split off by the adapter, so sigmoid heads have CAMs too.
 * Both heads are found from `model.layers` (roles, inputs, shapes) and `model.weights`, then
 * verified on every run: mean_ij CAM_c (+ b_c) must equal the score, or the method is skipped
 * with a warning. On these heads Grad-CAM at A equals ReLU(CAM_c) / (h*w) (gap+dense) or
 * ReLU(CAM_c - b_c) / (h*w) (1x1 conv + GAP).
 * Display: bilinear upsampling (half-pixel centres) and min-max scaling only, no ReLU, as in
 * Zhou's code (pytorch-grad-cam has no CAM). Raw data: CAM_c at the layer resolution [h, w].
 * Any other head is skipped at run time with a warning naming the supported heads, rather than
 * failing `check`: the method is on by default, and a model it cannot explain must not stop the
 * other methods of the report.
 */
export const cam = defineMethod({
  id: 'cam',
  title: 'CAM',
  paper: 'Zhou et al. 2016, Learning Deep Features for Discriminative Localization',
  needs: { gapHead: true },
  perSample: true,
  options: z.strictObject({
    enabled: z.boolean().default(true),
    target: targetOption,
    opacity: opacityOption,
  }),
  check(opts, model, classes?: readonly string[]) {
    return classOptionProblems(model, classes, { target: opts.target });
  },
  async run(ctx, opts) {
    const found = findCamHead(ctx.model);
    if (!found.ok) {
      ctx.logger.warn(`cam: skipped: ${found.problem}`);
      return;
    }
    const { head } = found;
    const targets = resolveTargets(ctx, opts.target, 'cam');
    const maps = camMaps(ctx, head, targets, ctx.settings.batchSize);
    try {
      const bad = maps.check.findIndex((c) => !c.ok);
      if (bad >= 0) {
        const c = maps.check[bad];
        ctx.logger.warn(`cam: skipped: for sample ${ctx.samples[bad].source} the score of class ${targets[bad]} is ${c.score} but the spatial mean of its class map${head.kind === 'gap+dense' ? ' plus the bias' : ''} is ${c.reconstructed}; the head is not a linear layer on global average pooling as its layer types suggest. Use grad-cam, which works with any head.`);
        return;
      }
      const [, H, W] = ctx.input.shape;
      const upsampled = upsampleMaps(maps.raw, H, W);
      try {
        await writeSampleMaps(ctx, { raw: maps.raw, display: upsampled }, {
          method: 'cam',
          title: 'CAM',
          layer: head.mapLayer,
          targets,
          opacity: opts.opacity,
          stats: (i) => ({
            head: head.kind,
            score: maps.check[i].score,
            ...(head.kind === 'gap+dense' ? { bias: maps.check[i].bias, denseLayer: head.denseLayer } : {}),
            ...(head.featureLayer && head.featureLayer !== head.mapLayer ? { featureLayer: head.featureLayer } : {}),
          }),
        });
      } finally {
        upsampled.dispose();
      }
    } finally {
      maps.raw.dispose();
    }
  },
});

export type CamHead =
  | {
    kind: 'gap+dense';
    /** A: the pooling input, where the map lives. */
    mapLayer: string;
    featureLayer: string;
    poolLayer: string;
    denseLayer: string;
    /** W [K, C], owned by the model. */
    kernel: tf.Tensor2D;
    /** Whether the stored kernel is [C, K] (a transposed MatMul in a GraphModel). */
    transposed: boolean;
    bias?: tf.Tensor1D;
  }
  | {
    kind: 'class-maps+gap';
    /** P: the pooling input with one map per class. */
    mapLayer: string;
    /** The input of P when P is a 1x1 convolution. */
    featureLayer?: string;
    poolLayer: string;
  };

/** Layers between the pooling and the scores that keep the values (adapter.ts LayerRole). */
const passesThrough = (l: LayerInfo) => l.role === 'reshape' || l.role === 'identity';

export const SUPPORTED_HEADS = 'CAM needs a global-average-pooling head: global average pooling followed by one dense layer (and optionally a softmax), '
  + 'or a convolution to one map per class followed by global average pooling (NiN, Darknet, SqueezeNet)';

/** Detects the classifier head from the layer list and the weights. */
export function findCamHead(model: ModelAdapter): { ok: true; head: CamHead } | { ok: false; problem: string } {
  const layers = model.layers;
  const fail = (why: string) => ({ ok: false as const, problem: `${SUPPORTED_HEADS}; ${why}. Use grad-cam instead: it works with any head (and equals CAM up to scale on the supported ones), or set methods.cam.enabled: false.` });
  if (layers.length === 0) return fail('the model has no layers');
  const used = new Set(layers.flatMap((l) => l.inputs));
  const units = model.head.units;
  const is2dScores = (l: LayerInfo) => l.outputShape.length === 2 && l.outputShape[1] === units;
  const sink = layers.filter((l) => !used.has(l.name)).find(is2dScores) ?? layers[layers.length - 1];
  const single = (l: LayerInfo) => (l.inputs.length === 1 && l.inputs[0] !== 'input' ? model.layer(l.inputs[0]) : undefined);
  const tail = describeTail(model, sink);

  let cur: LayerInfo | undefined = sink;
  // the scores come before the output activation the adapter split off (model/head.ts)
  if (cur && model.head.activation !== 'none' && cur.role === 'activation') cur = single(cur);
  let biasLayer: LayerInfo | undefined;
  if (cur && cur.role === 'bias') {
    biasLayer = cur;
    cur = single(cur);
  }
  while (cur && passesThrough(cur)) cur = single(cur);
  if (!cur) return fail(`this model ends in ${tail}`);

  if (cur.role === 'dense') {
    const dense = cur;
    let pool = single(dense);
    while (pool && passesThrough(pool)) pool = single(pool);
    if (!pool || !isGlobalPool(model, pool)) return fail(`the dense layer "${dense.name}" is not fed by global average pooling (this model ends in ${tail})`);
    const feature = single(pool)!;
    const K = feature.outputShape[3];
    const [kernel, ownBias] = model.weights(dense.name);
    const bias = biasLayer ? model.weights(biasLayer.name)[0] : ownBias;
    if (!kernel || kernel.rank !== 2) return fail(`the dense layer "${dense.name}" has no 2-D kernel`);
    const [r, c] = kernel.shape;
    const transposed = !(r === K && c === units) && r === units && c === K;
    if (!transposed && !(r === K && c === units)) {
      return fail(`the kernel of "${dense.name}" is [${r}, ${c}], not [${K}, ${units}] (pooled channels x outputs)`);
    }
    if (bias && (bias.rank !== 1 || bias.shape[0] !== units)) return fail(`the bias of "${dense.name}" has shape [${bias.shape.join(', ')}]`);
    return {
      ok: true,
      head: { kind: 'gap+dense', mapLayer: feature.name, featureLayer: feature.name, poolLayer: pool.name, denseLayer: dense.name, kernel: kernel as tf.Tensor2D, transposed, ...(bias ? { bias: bias as tf.Tensor1D } : {}) },
    };
  }
  if (biasLayer) return fail(`this model ends in ${tail}`);
  if (isGlobalPool(model, cur)) {
    const maps = single(cur)!;
    if (maps.outputShape[3] !== units) {
      return fail(`global average pooling "${cur.name}" gives ${maps.outputShape[3]} values, not the ${units} outputs, and no dense layer follows it`);
    }
    const k11 = maps.conv && maps.conv.kernel[0] === 1 && maps.conv.kernel[1] === 1 ? single(maps) : undefined;
    return { ok: true, head: { kind: 'class-maps+gap', mapLayer: maps.name, poolLayer: cur.name, ...(k11 ? { featureLayer: k11.name } : {}) } };
  }
  return fail(`this model ends in ${tail}`);
}

/** The last layers before the scores, for messages: `GlobalAveragePooling2D "gap" -> Dense "fc"`. */
function describeTail(model: ModelAdapter, sink: LayerInfo): string {
  const chain: LayerInfo[] = [sink];
  while (chain.length < 4 && chain[0].inputs.length === 1 && chain[0].inputs[0] !== 'input') chain.unshift(model.layer(chain[0].inputs[0]));
  return chain.map((l) => `${l.type} "${l.name}"`).join(' -> ');
}

/** An average over the whole spatial extent of a single 4-D input, keeping the channels. */
function isGlobalPool(model: ModelAdapter, l: LayerInfo): boolean {
  if (l.role !== 'average-pooling' || l.inputs.length !== 1 || l.inputs[0] === 'input') return false;
  const inShape = model.layer(l.inputs[0]).outputShape;
  if (inShape.length !== 4) return false;
  const K = inShape[3];
  const out = l.outputShape;
  return (out.length === 2 && out[1] === K) || (out.length === 4 && out[1] === 1 && out[2] === 1 && out[3] === K);
}

export interface CamCheck {
  ok: boolean;
  /** y^c from the model. */
  score: number;
  /** mean_ij CAM_c (+ b_c for gap+dense). */
  reconstructed: number;
  /** b_c (gap+dense; 0 without a bias). */
  bias: number;
}

/**
 * CAM_c for every sample [n, h, w] (forward passes only, `batchSize` images at a time), and the
 * per-sample check that the spatial mean of the map (plus b_c) reproduces the score.
 */
export function camMaps(ctx: Pick<MethodContext, 'model' | 'input'>, head: CamHead, targets: readonly number[], batchSize = 16): { raw: tf.Tensor3D; check: CamCheck[] } {
  const n = ctx.input.shape[0];
  const C = ctx.model.numClasses;
  const M = scoreMatrix(ctx.model.head);
  const parts: tf.Tensor3D[] = [];
  const check: CamCheck[] = [];
  try {
    for (let s = 0; s < n; s += batchSize) {
      const e = Math.min(n, s + batchSize);
      const [map, score, recon, bias, scale] = tf.tidy(() => {
        const xb = tf.slice(ctx.input, [s, 0, 0, 0], [e - s, -1, -1, -1]);
        const onehot = oneHotRows(targets.slice(s, e), C);
        // weights of the model's outputs in each selected class score (scores = outputs M)
        const sel = M ? tf.matMul(onehot, tf.tensor2d(M), false, true) : onehot;
        const { logits, activations } = ctx.model.forward(xb, [head.mapLayer]);
        const A = activations.get(head.mapLayer) as tf.Tensor4D;
        let map: tf.Tensor3D;
        let bias: tf.Tensor1D = tf.zeros([e - s]);
        if (head.kind === 'gap+dense') {
          const w = tf.matMul(sel, head.kernel, false, !head.transposed);
          map = tf.sum(tf.mul(A, tf.reshape(w, [e - s, 1, 1, -1])), 3);
          if (head.bias) bias = tf.sum(tf.mul(sel, head.bias), 1);
        } else {
          map = tf.sum(tf.mul(A, tf.reshape(sel, [e - s, 1, 1, -1])), 3);
        }
        const score = tf.sum(tf.mul(onehot, logits), 1);
        const recon = tf.add(tf.mean(map, [1, 2]), bias);
        const scale = tf.add(tf.mean(tf.abs(map), [1, 2]), tf.add(tf.abs(bias), tf.abs(score)));
        return [map, score, recon, bias, scale] as [tf.Tensor3D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
      });
      parts.push(map);
      const [sv, rv, bv, cv] = [score, recon, bias, scale].map((t) => t.dataSync());
      tf.dispose([score, recon, bias, scale]);
      for (let i = 0; i < e - s; i++) {
        check.push({ ok: Math.abs(rv[i] - sv[i]) <= 1e-3 * (1 + cv[i]), score: sv[i], reconstructed: rv[i], bias: bv[i] });
      }
    }
    return { raw: parts.length === 1 ? parts[0].clone() : tf.concat(parts, 0), check };
  } finally {
    tf.dispose(parts);
  }
}
