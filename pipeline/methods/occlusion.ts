import * as tf from '@tensorflow/tfjs';
import { yieldIfDue } from '../interrupt.ts';
import { z } from 'zod';
import { pixelToInputs } from '../data/preprocess.ts';
import { ConvlensError } from '../errors.ts';
import { opacityOption, writeSampleMaps } from './maps.ts';
import { oneHotRows, resolveTargets, targetOption } from './targets.ts';
import { defineMethod, type MethodContext, type OptionProblem } from './types.ts';

const pairOption = z.union([z.number().int().positive(), z.tuple([z.number().int().positive(), z.number().int().positive()])]);
type Pair = z.infer<typeof pairOption>;

/**
 * Occlusion sensitivity (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional
 * Networks", sec. 4.2), with the window layout and averaging of Captum's `Occlusion`.
 * A patch of size [ph, pw] slides over the input x [H, W, C] with stride [sy, sx]; window k
 * covers rows [k_y*sy, k_y*sy + ph) and columns [k_x*sx, k_x*sx + pw), clipped at the border,
 * for k_y = 0 .. ceil((H - ph) / sy) (and likewise in x), so every pixel is covered. For each
 * window the occluded image is x * (1 - m_k) + b * m_k (m_k the window mask, all channels) and
 *   d_k    = p_c(x) - p_c(x_k)                 p = softmax(logits), c the target class
 *   M(u,v) = sum_{k covers (u,v)} d_k / #{k covers (u,v)}                     [H, W]
 * (Captum divides by the count of windows covering each position.) Captum needs stride <= patch
 * so no pixel is skipped; `check` enforces it. Forward passes per sample: 1 + n_y * n_x.
 * Fill b: the default is the paper's gray square, pixel value 128 (Captum has no default fill;
 * its usual baseline 0 is black only for pixel/255 inputs). 'zero' is input value 0 (Captum's baseline=0; black only for pixel/255 inputs);
 * 'mean' is the image's own per-channel mean in input space (a neutral patch, in the spirit of
 * the paper's gray square); a number p is a pixel value 0-255, mapped through the preprocessing
 * as (p * scale - mean[c]) / std[c] (pixelToInput).
 * Raw data: M [H, W], signed (negative where hiding a patch raised the probability). The heatmap
 * shows max(M, 0) min-max scaled (`display: positive`, the evidence for the class, as Captum's
 * visualisation with sign="positive") or the signed M min-max scaled (`display: signed`).
 */
export const occlusion = defineMethod({
  id: 'occlusion',
  title: 'Occlusion sensitivity',
  paper: 'Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks',
  needs: {},
  perSample: true,
  options: z.strictObject({
    enabled: z.boolean().default(true),
    size: pairOption.optional().describe('Patch [height, width] (or one number) in input pixels (default: 1/8 of the input, rounded)'),
    stride: pairOption.optional().describe('Step between patches [y, x] (or one number; default: half the patch, rounded; at most the patch)'),
    fill: z.union([z.enum(['zero', 'mean']), z.number().min(0).max(255)]).default(128)
      .describe('What hides a patch: a pixel value 0-255 mapped through the preprocessing (default 128, the paper\'s gray square), "zero" (input value 0, Captum\'s baseline) or "mean" (the image\'s per-channel mean)'),
    target: targetOption,
    display: z.enum(['positive', 'signed']).default('positive')
      .describe('positive: show max(drop, 0); signed: min-max of the signed drop (the raw data is always signed)'),
    opacity: opacityOption,
  }),
  check(opts, model) {
    const [H, W] = model.inputShape;
    return geometryProblems(occlusionGeometry([H, W], opts.size, opts.stride), [H, W]);
  },
  passes: (opts, size) => 1 + occlusionWindows(size, occlusionGeometry(size, opts.size, opts.stride)).length,
  async run(ctx, opts) {
    const targets = resolveTargets(ctx, opts.target, 'occlusion');
    const [n, H, W] = ctx.input.shape;
    const geo = occlusionGeometry([H, W], opts.size, opts.stride);
    const problems = geometryProblems(geo, [H, W]);
    if (problems.length) throw new ConvlensError(`viz.yaml: methods.occlusion.${problems[0].key}: ${problems[0].message}`, { hint: 'Choose a window size and stride that fit the model input (methods.occlusion.size, stride).' });
    const windows = occlusionWindows([H, W], geo);
    const passes = 1 + windows.length;
    const bar = ctx.logger.progress('occlusion', n * passes);
    const base = targetProbabilities(ctx, ctx.input, targets);
    bar.tick(n);
    const maps = new Float32Array(n * H * W);
    for (let i = 0; i < n; i++) {
      const map = await occlusionMap(ctx, i, targets[i], base[i], windows, opts.fill, (k) => bar.tick(k));
      maps.set(map, i * H * W);
    }
    bar.done(`${n} sample${n === 1 ? '' : 's'}, ${n * passes} forward passes`);
    const raw = tf.tensor3d(maps, [n, H, W]);
    const display = opts.display === 'positive' ? tf.relu(raw) : raw;
    try {
      await writeSampleMaps(ctx, { raw, display }, { reading: 'bright regions, when hidden, lowered the probability most',
        method: 'occlusion', title: 'Occlusion sensitivity', targets, opacity: opts.opacity,
        grid: [Math.ceil(H / geo.stride[0]), Math.ceil(W / geo.stride[1])],
        stats: (i) => ({
          patchHeight: geo.size[0], patchWidth: geo.size[1], strideY: geo.stride[0], strideX: geo.stride[1],
          windows: windows.length, forwardPasses: passes, fill: String(opts.fill), display: opts.display,
          probability: base[i],
        }),
      });
    } finally {
      tf.dispose([raw, display]);
    }
  },
});

export interface OcclusionGeometry {
  size: [number, number];
  stride: [number, number];
}

/** Patch and stride with the defaults filled in: patch ~ 1/8 of the input, stride ~ half the patch. */
export function occlusionGeometry([H, W]: [number, number], size?: Pair, stride?: Pair): OcclusionGeometry {
  const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);
  const s = size !== undefined ? pair(size) : [Math.max(1, Math.round(H / 8)), Math.max(1, Math.round(W / 8))] as [number, number];
  const st = stride !== undefined ? pair(stride) : [Math.max(1, Math.round(s[0] / 2)), Math.max(1, Math.round(s[1] / 2))] as [number, number];
  return { size: s, stride: st };
}

function geometryProblems(geo: OcclusionGeometry, [H, W]: [number, number]): OptionProblem[] {
  const problems: OptionProblem[] = [];
  const dims = [[H, 'height'], [W, 'width']] as const;
  dims.forEach(([d, what], a) => {
    if (geo.size[a] > d) problems.push({ key: 'size', message: `the patch ${what} ${geo.size[a]} exceeds the input ${what} ${d}` });
    else if (geo.size[a] < d && geo.stride[a] > geo.size[a]) {
      problems.push({ key: 'stride', message: `stride ${geo.stride[a]} is larger than the patch ${what} ${geo.size[a]}: pixels between patches would never be occluded` });
    }
  });
  return problems;
}

/** Window rectangles [y0, x0, y1, x1) in Captum's order (x fastest), clipped at the border. */
export function occlusionWindows([H, W]: [number, number], geo: OcclusionGeometry): [number, number, number, number][] {
  const starts = (d: number, size: number, stride: number) =>
    Array.from({ length: Math.ceil((d - size) / stride) + 1 }, (_, k) => k * stride);
  const out: [number, number, number, number][] = [];
  for (const y of starts(H, geo.size[0], geo.stride[0])) {
    for (const x of starts(W, geo.size[1], geo.stride[1])) out.push([y, x, Math.min(H, y + geo.size[0]), Math.min(W, x + geo.size[1])]);
  }
  return out;
}

/** p_target per example, in forward batches of the configured size. */
function targetProbabilities(ctx: MethodContext, x: tf.Tensor4D, targets: readonly number[]): Float32Array {
  const n = x.shape[0];
  const out = new Float32Array(n);
  const bs = Math.max(1, ctx.settings.batchSize);
  for (let s = 0; s < n; s += bs) {
    const e = Math.min(n, s + bs);
    const p = tf.tidy(() => {
      const probs = ctx.model.probabilities(tf.slice(x, [s, 0, 0, 0], [e - s, -1, -1, -1]));
      const mask = oneHotRows(targets.slice(s, e), ctx.model.numClasses);
      return tf.sum(tf.mul(probs, mask), 1);
    });
    out.set(p.dataSync(), s);
    p.dispose();
  }
  return out;
}

/** The per-channel fill value b in input space. */
function fillValues(ctx: MethodContext, fill: 'zero' | 'mean' | number, x: tf.Tensor4D): tf.Tensor4D {
  const C = x.shape[3];
  if (fill === 'zero') return tf.zeros([1, 1, 1, C]);
  if (fill === 'mean') return tf.mean(x, [1, 2], true) as tf.Tensor4D;
  return tf.tensor4d(pixelToInputs(fill, C, ctx.preprocessing), [1, 1, 1, C]);
}

/** M [H, W] for sample i (see the method's doc comment). */
async function occlusionMap(
  ctx: MethodContext, i: number, target: number, base: number,
  windows: readonly [number, number, number, number][], fill: 'zero' | 'mean' | number, tick: (k: number) => void,
): Promise<Float32Array> {
  const [, H, W] = ctx.input.shape;
  const sum = new Float64Array(H * W);
  const count = new Float64Array(H * W);
  const bs = Math.max(1, ctx.settings.batchSize);
  const x = tf.slice(ctx.input, [i, 0, 0, 0], [1, -1, -1, -1]);
  const b = fillValues(ctx, fill, x);
  try {
    for (let start = 0; start < windows.length; start += bs) {
      const chunk = windows.slice(start, start + bs);
      const mask = new Float32Array(chunk.length * H * W);
      chunk.forEach(([y0, x0, y1, x1], k) => {
        for (let y = y0; y < y1; y++) mask.fill(1, k * H * W + y * W + x0, k * H * W + y * W + x1);
      });
      const p = tf.tidy(() => {
        const m = tf.tensor4d(mask, [chunk.length, H, W, 1]);
        const occluded = tf.add(tf.mul(x, tf.sub(1, m)), tf.mul(b, m)) as tf.Tensor4D;
        const probs = ctx.model.probabilities(occluded);
        return tf.sum(tf.mul(probs, oneHotRows([target], ctx.model.numClasses)), 1);
      });
      const pv = (await p.data()) as Float32Array;
      p.dispose();
      chunk.forEach(([y0, x0, y1, x1], k) => {
        const drop = base - pv[k];
        for (let y = y0; y < y1; y++) {
          for (let xx = x0; xx < x1; xx++) {
            sum[y * W + xx] += drop;
            count[y * W + xx] += 1;
          }
        }
      });
      tick(chunk.length);
      await yieldIfDue();
    }
  } finally {
    tf.dispose([x, b]);
  }
  return Float32Array.from(sum, (s, j) => (count[j] > 0 ? s / count[j] : 0));
}
