import * as tf from '@tensorflow/tfjs';
import { yieldIfDue } from '../interrupt.ts';
import { headProbabilities } from '../model/head.ts';
import { z } from 'zod';
import { perChannel, pixelToInput, type PixelScaling } from '../data/preprocess.ts';
import { ConvlensError, nearest } from '../errors.ts';
import { classScore, type ModelAdapter, type Objective } from '../model/adapter.ts';
import { ImageParameterization, type InputRange } from './image-parameterization.ts';
import { mulberry32 } from '../random.ts';
import { type Affine, isIdentity, sampleAffine, totalVariation, type TransformOptions, Warp } from './image-transforms.ts';
import { oneHotRows } from './targets.ts';
import { defineMethod, layerProblem, type MethodContext, type OptionProblem } from './types.ts';

/**
 * Class model visualisation (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional
 * Networks", section 2) with the regularisers of feature visualisation (Olah, Mordvintsev &
 * Schubert 2017, "Feature Visualization", Distill; the Lucid library). Gradient ascent on an
 * input image I [h, w, c] in the model's preprocessed space:
 *   I* = argmax_I  S(T(I)) - l2 * ||I||^2 - tv * TV(I)
 * where S is the pre-softmax score S_c of a class c, or, for a channel k of a layer, the mean
 * over positions of its activation A_k [h', w'] (the unit itself for a dense layer); T is a
 * random affine warp redrawn every step (integer shift of up to `jitter` px, a scale from
 * `scales`, an integer rotation of up to `rotate` degrees; outside points take the range
 * centre, as Lucid pads with 0.5), TV the anisotropic total variation. ||I||^2 is the sum of
 * squares around 0 of the preprocessed space (Simonyan's 0 is the mean image; for inputs scaled
 * to [0, 1] it is black). I is parameterised (image-parameterization.ts) as the pixels themselves,
 * clipped to the valid range after each step, or (default) as Lucid's decorrelated 1/f-scaled
 * Fourier spectrum followed by a sigmoid into the valid range. Optionally the parameter is
 * blurred every `blurEvery` steps (Yosinski et al. 2015). Steps: Adam (Lucid's choice, lr
 * 0.05; for pixels the step is lr * (hi - lo) per channel) or plain gradient ascent (`sgd`,
 * p += lr * grad, Simonyan's). Every random draw comes from `seed`: image i has its own stream,
 * seeded by `seed` and its target, so it does not depend on which other images are made.
 *
 * The valid range [lo_c, hi_c] per channel is `inputRange`: "auto" (default) is the image of pixels
 * 0..255 under the preprocessing, ((0 or 255) * scale - mean_c) / std_c; "samples" the per-channel
 * min and max of the sample inputs (narrower when no sample spans black to white); or given.
 *
 * Results: one image per class or channel, raw = I* [h, w, c] (preprocessed, model channel
 * order); the picture maps [lo_c, hi_c] to 0..255 per channel. Stats: the probability (softmax, or sigmoid for binary and multi-label heads)
 * the image reaches for its class (`probability`), `reached` = probability >= minProbability
 * (failures are warned about and titled as such, never hidden), the final score, the top-1
 * class; for channels the final mean activation.
 */

const LUCID_SCALES = Array.from({ length: 11 }, (_, i) => 1 + (i - 5) / 50);

const classItem = z.union([z.number().int().nonnegative(), z.string().min(1)]);
const rangePair = z.tuple([z.number(), z.number()]);

export const classVisualization = defineMethod({
  id: 'class-visualization',
  title: 'Class model visualisation',
  paper: 'Simonyan et al. 2014, Deep Inside Convolutional Networks; Olah et al. 2017, Feature Visualization',
  needs: {},
  options: z.strictObject({
    enabled: z.boolean().default(true),
    classes: z.union([z.literal('samples'), z.array(classItem)]).default('samples')
      .describe('Classes to visualise: "samples" (the top-1 classes of the sample images) or a list of class indices or names; [] for none'),
    channels: z.array(z.strictObject({ layer: z.string().min(1), channel: z.number().int().nonnegative() })).default([])
      .describe('Feature visualisation: single channels { layer, channel } whose mean activation is maximised'),
    steps: z.number().int().positive().default(128).describe('Gradient-ascent steps (each is one forward and backward pass of the model)'),
    optimizer: z.enum(['adam', 'sgd']).default('adam').describe('adam (Lucid) or plain gradient ascent (Simonyan)'),
    learningRate: z.number().positive().default(0.05).describe('Step size of the optimizer'),
    l2: z.number().min(0).default(0).describe('lambda of the L2 penalty lambda * ||I||^2 (sum over pixels, preprocessed space)'),
    tv: z.number().min(0).default(0).describe('Weight of the total-variation penalty (sum of absolute neighbour differences)'),
    blurEvery: z.number().int().min(0).default(0).describe('Blur the image parameter every k steps (0: never)'),
    blurSigma: z.number().positive().default(0.5).describe('Gaussian blur sigma in pixels'),
    jitter: z.union([z.literal('auto'), z.number().int().min(0)]).default('auto')
      .describe('Largest random shift in pixels per step; auto: round(min(h, w) / 28), 8 px at 224'),
    scales: z.array(z.number().positive()).min(1).default(LUCID_SCALES).describe('Random scale factors, one drawn per step (Lucid: 0.9 to 1.1)'),
    rotate: z.number().min(0).max(180).default(10).describe('Largest random rotation in degrees per step'),
    parameterization: z.enum(['pixel', 'fft']).default('fft').describe('pixel: the image itself (clipped); fft: decorrelated Fourier spectrum + sigmoid (Lucid)'),
    decay: z.number().min(0).default(1).describe('fft: spectrum scale 1 / |f|^decay'),
    inputRange: z.union([z.enum(['auto', 'samples']), rangePair, z.array(rangePair).min(1).max(3)]).default('auto')
      .describe('Valid range of preprocessed pixels: "auto" (pixels 0..255 through input.scale/mean/std), "samples" (per-channel min/max of the sample inputs), [lo, hi], or one [lo, hi] per channel'),
    minProbability: z.number().min(0).max(1).default(0.5).describe('A class image whose probability stays below this is flagged "did not reach the target"'),
    seed: z.number().int().default(0).describe('Added to compute.seed: the seed of the starting image and the random transforms'),
  }),
  /** `classNames`: when the caller passes them, class names are checked here too (else in run). */
  check(opts, model, classNames?: readonly string[]) {
    const problems: OptionProblem[] = [];
    if (Array.isArray(opts.classes)) {
      opts.classes.forEach((c, i) => {
        if (typeof c === 'number' && c >= model.numClasses) {
          problems.push({ key: `classes.${i}`, message: `class index ${c} is out of range; the model has ${model.numClasses} classes (0-${model.numClasses - 1})` });
        } else if (typeof c === 'string' && classNames && !classNames.includes(c)) {
          problems.push({ key: `classes.${i}`, message: `no class "${c}"; nearest: ${nearest(c, classNames, 3).join(', ')}` });
        }
      });
    }
    opts.channels.forEach((ch, i) => {
      const lp = layerProblem(model, `channels.${i}.layer`, ch.layer);
      if (lp.length) { problems.push(...lp); return; }
      const count = model.layer(ch.layer).outputShape.at(-1) ?? 0;
      if (ch.channel >= count) problems.push({ key: `channels.${i}.channel`, message: `layer "${ch.layer}" has ${count} channels (0-${count - 1}); got ${ch.channel}` });
    });
    const c = model.inputShape[2];
    if (opts.inputRange !== 'samples' && opts.inputRange !== 'auto') {
      const pairs = isPair(opts.inputRange) ? [opts.inputRange] : opts.inputRange;
      if (pairs.length !== 1 && pairs.length !== c) problems.push({ key: 'inputRange', message: `give one [lo, hi] or ${c} (one per channel); got ${pairs.length}` });
      pairs.forEach(([lo, hi], i) => { if (!(hi > lo)) problems.push({ key: `inputRange`, message: `range ${i}: hi (${hi}) must be above lo (${lo})` }); });
    }
    return problems;
  },
  async run(ctx, opts) {
    const range = resolveRange(ctx, opts.inputRange);
    const classes = resolveClasses(ctx, opts.classes);
    const jobs: Job[] = [];
    if (classes.length) jobs.push({ kind: 'class', targets: classes });
    const byLayer = new Map<string, number[]>();
    for (const { layer, channel } of opts.channels) {
      const list = byLayer.get(layer) ?? [];
      if (!list.includes(channel)) list.push(channel);
      byLayer.set(layer, list);
    }
    for (const [layer, channels] of byLayer) jobs.push({ kind: 'channel', layer, channels });
    if (!jobs.length) {
      ctx.logger.warn('class-visualization: no classes and no channels to visualise (classes: "samples" with no samples?); skipped');
      return;
    }
    const progress = ctx.logger.progress('class-visualization', opts.steps * jobs.length);
    let flagged = 0;
    for (const job of jobs) {
      const result = await optimise(ctx.model, job, { ...opts, seed: ctx.settings.seed + opts.seed, range, channelOrder: ctx.settings.channelOrder }, () => progress.tick());
      try {
        flagged += await writeResults(ctx, job, result, opts, range);
      } finally {
        tf.dispose([result.images, result.probs, ...(result.activation ? [result.activation] : [])]);
      }
    }
    progress.done(flagged ? `${flagged} class image(s) did not reach p >= ${opts.minProbability}` : undefined);
  },
});

type Options = z.infer<typeof classVisualization.options>;


type Job = { kind: 'class'; targets: number[] } | { kind: 'channel'; layer: string; channels: number[] };

const isPair = (v: unknown): v is [number, number] => Array.isArray(v) && v.length === 2 && typeof v[0] === 'number';

/** The valid input range per channel, from the option or the sample inputs. */
export function resolveRange(ctx: Pick<MethodContext, 'input' | 'model' | 'logger'> & { preprocessing?: PixelScaling }, option: Options['inputRange']): InputRange {
  const c = ctx.model.inputShape[2];
  const pre = ctx.preprocessing;
  if (option === 'auto' && pre) {
    const ends = Array.from({ length: c }, (_, k) => [0, 255].map((px) => pixelToInput(px, k, pre)));
    return { lo: ends.map((e) => Math.min(...e)), hi: ends.map((e) => Math.max(...e)) };
  }
  if (option !== 'samples' && option !== 'auto') {
    const pairs = isPair(option) ? [option] : option;
    return { lo: Array.from({ length: c }, (_, k) => perChannel(pairs, k)[0]), hi: Array.from({ length: c }, (_, k) => perChannel(pairs, k)[1]) };
  }
  if (ctx.input.shape[0] === 0) {
    ctx.logger.warn('class-visualization: no sample inputs to derive the valid pixel range from; using [0, 1] (set methods.class-visualization.inputRange)');
    return { lo: new Array(c).fill(0), hi: new Array(c).fill(1) };
  }
  const [lo, hi] = tf.tidy(() => {
    const flat = tf.reshape(ctx.input, [-1, ctx.input.shape[3]]);
    return [Array.from(tf.min(flat, 0).dataSync()), Array.from(tf.max(flat, 0).dataSync())];
  });
  for (let k = 0; k < c; k++) {
    if (!(hi[k] > lo[k])) {
      ctx.logger.warn(`class-visualization: channel ${k} of the sample inputs is constant (${lo[k]}); using [${lo[k] - 0.5}, ${lo[k] + 0.5}] (set inputRange)`);
      lo[k] -= 0.5;
      hi[k] += 0.5;
    }
  }
  return { lo, hi };
}

/** Class indices, in order, without repeats. Unknown names throw with the nearest names. */
export function resolveClasses(ctx: Pick<MethodContext, 'samples' | 'classes' | 'model'>, option: Options['classes']): number[] {
  const list = option === 'samples' ? ctx.samples.map((s) => s.target) : option.map((c) => {
    if (typeof c === 'number') return c;
    const i = ctx.classes.indexOf(c);
    if (i < 0) throw new ConvlensError(`viz.yaml: methods.class-visualization.classes: no class "${c}"; nearest: ${nearest(c, ctx.classes, 3).join(', ')}`, { hint: 'Name classes exactly as in model.labels, or give class indices.' });
    return i;
  });
  for (const c of list) {
    if (c < 0 || c >= ctx.model.numClasses) throw new ConvlensError(`viz.yaml: methods.class-visualization.classes: class index ${c} is out of range (0-${ctx.model.numClasses - 1})`, { hint: 'Class indices count the model outputs from 0.' });
  }
  return [...new Set(list)];
}

/** FNV-1a of the key, mixed with the seed: one random stream per image. */
function streamSeed(seed: number, key: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

/** Mean activation per example and channel, [n, channels]. */
function channelMeans(a: tf.Tensor): tf.Tensor2D {
  if (a.rank === 2) return a as tf.Tensor2D;
  return tf.tidy(() => tf.mean(tf.reshape(a, [a.shape[0], -1, a.shape[a.rank - 1]]), 1) as tf.Tensor2D);
}

interface OptimiseResult {
  /** [n, h, w, c] in preprocessed space. */
  images: tf.Tensor4D;
  /** softmax of the final images [n, classes]. */
  probs: tf.Tensor2D;
  /** Final target scores: logits (class) or mean channel activations (channel). */
  scores: number[];
  /** Mean channel activations [n, channels] (channel jobs). */
  activation?: tf.Tensor2D;
}

/** Gradient ascent for one batch of images sharing an objective type. */
export async function optimise(
  model: ModelAdapter,
  job: Job,
  opts: Omit<Options, 'inputRange'> & { range: InputRange; channelOrder: 'rgb' | 'bgr' },
  tick: () => void = () => {},
): Promise<OptimiseResult> {
  const [h, w, c] = model.inputShape;
  const keys = job.kind === 'class' ? job.targets.map((t) => `class:${t}`) : job.channels.map((k) => `channel:${job.layer}:${k}`);
  const n = keys.length;
  const rngs = keys.map((k) => mulberry32(streamSeed(opts.seed, k)));
  const transform: TransformOptions = {
    jitter: opts.jitter === 'auto' ? Math.round(Math.min(h, w) / 28) : opts.jitter,
    scales: opts.scales,
    rotate: opts.rotate,
  };
  const fill = opts.range.lo.map((lo, k) => (lo + opts.range.hi[k]) / 2);
  const param = new ImageParameterization({ kind: opts.parameterization, n, h, w, c, range: opts.range, channelOrder: opts.channelOrder, decay: opts.decay });
  const mask = oneHotRows(job.kind === 'class' ? job.targets : job.channels, job.kind === 'class' ? model.numClasses : (model.layer(job.layer).outputShape.at(-1) ?? 0));
  const layers = job.kind === 'channel' ? [job.layer] : [];
  const objective: Objective = job.kind === 'class'
    ? classScore(mask)
    : ({ activations }, [s, e]) => tf.sum(tf.mul(channelMeans(activations.get(job.layer)!), mask.slice([s, 0], [e - s, -1])));
  // Adam steps on pixels are in units of each channel's range
  const stepScale = opts.parameterization === 'pixel' && opts.optimizer === 'adam' ? tf.tensor1d(opts.range.hi.map((v, k) => v - opts.range.lo[k])) : tf.scalar(1);
  let p = param.init(rngs);
  let m = tf.zerosLike(p);
  let v = tf.zerosLike(p);
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  /** d/dp of S(T(I(p))) - penalties: the model's input gradient, chained through the warp and the parameterisation. */
  const gradientStep = (affines: Affine[]): tf.Tensor => {
    const warp = affines.every(isIdentity) ? undefined : new Warp(affines, h, w);
    const moved = (img: tf.Tensor4D) => (warp ? warp.apply(img, fill) : img);
    let dScore: tf.Tensor | undefined;
    try {
      const x = tf.tidy(() => moved(param.image(p)));
      try {
        const r = model.gradient(x, objective, 'input', layers);
        tf.dispose([r.value, r.logits]);
        dScore = r.grad;
      } finally {
        x.dispose();
      }
      const dS = dScore;
      return tf.tidy(() => tf.grad((q: tf.Tensor) => {
        const img = param.image(q);
        let f: tf.Tensor = tf.sum(tf.mul(moved(img), dS));
        if (opts.l2 > 0) f = tf.sub(f, tf.mul(opts.l2, tf.sum(tf.square(img))));
        if (opts.tv > 0) f = tf.sub(f, tf.mul(opts.tv, totalVariation(img)));
        return f as tf.Scalar;
      })(p));
    } finally {
      dScore?.dispose();
      warp?.dispose();
    }
  };
  try {
    for (let step = 1; step <= opts.steps; step++) {
      const g = gradientStep(rngs.map((r) => sampleAffine(r, transform)));
      const [np, nm, nv] = tf.tidy(() => {
        if (opts.optimizer === 'sgd') return [tf.add(p, tf.mul(g, opts.learningRate)), m.clone(), v.clone()];
        const m1 = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const v1 = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        const mh = tf.div(m1, 1 - b1 ** step);
        const vh = tf.div(v1, 1 - b2 ** step);
        const delta = tf.mul(tf.div(mh, tf.add(tf.sqrt(vh), eps)), tf.mul(stepScale, opts.learningRate));
        return [tf.add(p, delta), m1, v1];
      });
      tf.dispose([g, p, m, v]);
      [p, m, v] = [np, nm, nv];
      if (opts.blurEvery > 0 && step % opts.blurEvery === 0) {
        const blurred = param.blur(p, opts.blurSigma);
        p.dispose();
        p = blurred;
      }
      const projected = param.project(p);
      p.dispose();
      p = projected;
      tick();
      await yieldIfDue();
    }
    const images = param.image(p);
    const { logits, activations } = model.forward(images, layers);
    const probs = headProbabilities(model.head, logits);
    const activation = job.kind === 'channel' ? channelMeans(activations.get(job.layer)!) : undefined;
    const scores = tf.tidy(() => Array.from(tf.sum(tf.mul(activation ?? logits, mask), 1).dataSync()));
    tf.dispose([logits, ...[...activations.values()].filter((a) => a !== activation)]);
    return { images, probs, scores, activation };
  } finally {
    tf.dispose([p, m, v, mask, stepScale]);
    param.dispose();
  }
}

/** Preprocessed [h, w, c] to 8-bit pixels: [lo_c, hi_c] -> 0..255, RGB order for display. */
export function toDisplay(data: Float32Array, c: number, range: InputRange, channelOrder: 'rgb' | 'bgr'): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const k = i % c;
    const src = c === 3 && channelOrder === 'bgr' ? i - k + (2 - k) : i;
    const ks = src % c;
    const t = (data[src] - range.lo[ks]) / (range.hi[ks] - range.lo[ks]);
    out[i] = Math.round(Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * 255);
  }
  return out;
}


/** Writes one image artifact per class or channel; returns how many class images were flagged. */
async function writeResults(ctx: MethodContext, job: Job, result: OptimiseResult, opts: Options, range: InputRange): Promise<number> {
  const [n, h, w, c] = result.images.shape;
  const data = (await result.images.data()) as Float32Array;
  const probs = (await result.probs.array()) as number[][];
  const per = h * w * c;
  const common = { steps: opts.steps, parameterization: opts.parameterization, seed: opts.seed, rangeMin: Math.min(...range.lo), rangeMax: Math.max(...range.hi) };
  let flagged = 0;
  for (let i = 0; i < n; i++) {
    const raw = data.slice(i * per, (i + 1) * per);
    const finite = raw.every(Number.isFinite);
    const row = probs[i];
    const top = row.reduce((best, p, k) => (p > row[best] ? k : best), 0);
    const topName = ctx.classes[top] ?? String(top);
    const pixels = toDisplay(raw, c, range, ctx.settings.channelOrder);
    const img = { pixels, width: w, height: h, channels: (c === 3 ? 3 : 1) as 1 | 3 };
    if (!finite) ctx.logger.warn(`class-visualization: image ${i} of the ${job.kind} run has non-finite values`);
    if (job.kind === 'class') {
      const cls = job.targets[i];
      const className = ctx.classes[cls] ?? String(cls);
      const probability = row[cls];
      const reached = finite && probability >= opts.minProbability;
      const p = probability.toFixed(3);
      if (!reached) {
        flagged++;
        ctx.logger.warn(`class-visualization: "${className}" did not reach the target: p = ${p} < ${opts.minProbability} after ${opts.steps} steps (top-1: "${topName}")`);
      }
      await ctx.out.image('class-visualization', `class-${cls}`, {
        id: `class-visualization/class-${cls}`,
        method: 'class-visualization',
        class: cls,
        className,
        title: reached ? `Class visualisation of "${className}" (p = ${p})` : `Class visualisation of "${className}": did not reach the target (p = ${p} < ${opts.minProbability})`,
        alt: `Image optimised to raise the score of class "${className}"; the model gives it p = ${p}${reached ? '' : `, so it did not reach the target of ${opts.minProbability}`}; top-1 "${topName}"`,
        stats: { ...common, probability, reached, score: result.scores[i], topClass: top, topClassName: topName, topProbability: row[top] },
      }, img, { data: raw, shape: [h, w, c] });
    } else {
      const channel = job.channels[i];
      await ctx.out.image('class-visualization', `${job.layer}-channel-${channel}`, {
        id: `class-visualization/${job.layer}/channel-${channel}`,
        method: 'class-visualization',
        layer: job.layer,
        title: `Feature visualisation of ${job.layer} channel ${channel}`,
        alt: `Image optimised to raise the mean activation of channel ${channel} of layer ${job.layer} (reached ${result.scores[i].toFixed(3)}); top-1 class "${topName}"`,
        stats: { ...common, channel, activation: result.scores[i], topClass: top, topClassName: topName, topProbability: row[top] },
      }, img, { data: raw, shape: [h, w, c] });
    }
  }
  return flagged;
}
