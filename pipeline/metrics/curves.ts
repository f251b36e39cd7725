import * as tf from '@tensorflow/tfjs';
import { yieldIfDue } from '../interrupt.ts';
import type { Progress } from '../logger.ts';
import type { ModelAdapter } from '../model/adapter.ts';
import type { DatasetAccess } from '../methods/types.ts';
import { mulberry32 } from '../random.ts';
import type { WorkerPool } from '../compute/worker-pool.ts';
import { argsort } from './sort.ts';

/**
 * Deletion and insertion (Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling for
 * Explanation of Black-box Models", sec. 4.1). For an image x [H, W, C], a map M [H, W] of the
 * class c and the pixel order pi (M descending; ties by raster index, NaN last), point k of a
 * curve is the image with the first min(k * s, H*W) pixels of pi (all channels) taken from `end`
 * and the rest from `start` (s = pixels per step, k = 0 .. n, n = ceil(H*W / s)):
 *   deletion:  start = x,          end = the fill image (removed pixels)
 *   insertion: start = blur(x),    end = x              (revealed pixels)
 * The curve is p_c (softmax) at each point, the score the area under it over the fraction of
 * pixels f_k = min(k s, H W) / (H W), by the trapezoid rule:
 *   AUC = sum_k (f_{k+1} - f_k) (p_k + p_{k+1}) / 2
 * which is RISE's auc() (sum - first/2 - last/2) / n when s divides H*W. Lower deletion and
 * higher insertion AUC mean a more faithful ranking.
 */

/** Curve abscissae: f_k = min(k s, total) / total for k = 0 .. ceil(total / s). */
export function stepFractions(total: number, pixelsPerStep: number): number[] {
  const n = Math.ceil(total / pixelsPerStep);
  return Array.from({ length: n + 1 }, (_, k) => Math.min(k * pixelsPerStep, total) / total);
}

/** Trapezoid area under (x, y). */
export function trapezoidAuc(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new Error(`trapezoidAuc: ${x.length} abscissae vs ${y.length} values`);
  let area = 0;
  for (let k = 0; k + 1 < x.length; k++) area += (x[k + 1] - x[k]) * (y[k] + y[k + 1]) / 2;
  return area;
}

/** Pixel indices by value (as float32), descending; ties by index (ascending); NaN last. */
export function rankPixels(map: ArrayLike<number>): Uint32Array {
  return argsort(map, true);
}

/** Uniform noise in [0, 1), deterministic for a seed: the random-attribution baseline. */
export function noiseMap(length: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length }, () => rand());
}

/** An image [H*W*C] with every pixel set to `value` (one value per channel). */
export function constantImage(pixels: number, value: readonly number[]): Float32Array {
  const C = value.length;
  const out = new Float32Array(pixels * C);
  for (let i = 0; i < pixels; i++) for (let c = 0; c < C; c++) out[i * C + c] = value[c];
  return out;
}

/**
 * Per-channel mean of every dataset image in input space, streamed batch by batch; undefined for
 * an empty dataset.
 */
export async function datasetChannelMean(dataset: DatasetAccess, batchSize: number): Promise<{ mean: number[]; images: number } | undefined> {
  let sum: Float64Array | undefined;
  let count = 0;
  let images = 0;
  for await (const b of dataset.batches(batchSize)) {
    try {
      const [n, h, w, c] = b.input.shape;
      const part = tf.tidy(() => tf.sum(b.input, [0, 1, 2]).dataSync());
      sum ??= new Float64Array(c);
      for (let k = 0; k < c; k++) sum[k] += part[k];
      count += n * h * w;
      images += n;
    } finally {
      b.input.dispose();
    }
  }
  return sum && count > 0 ? { mean: Array.from(sum, (v) => v / count), images } : undefined;
}

export interface CurveSpec {
  /** The image at point 0, [H*W*C]. Specs sharing this array share the evaluation of point 0. */
  start: Float32Array;
  /** The image at the last point, [H*W*C]. Specs sharing it share that evaluation. */
  end: Float32Array;
  /** Pixel order (indices into H*W). */
  order: Uint32Array;
  /** Class whose probability is recorded. */
  target: number;
}

/** One batch of curve images [m, H, W, C] and where each row's p_target goes. */
interface CurveBatch {
  images: Float32Array;
  rows: { target: number; set: (p: number) => void }[];
}

/**
 * The images of every curve point of every spec, packed into batches of up to `batchSize` (the
 * endpoints once per distinct start/end image and class), each with the setters of its rows.
 */
function* curveBatches(specs: readonly CurveSpec[], curves: number[][], size: number, C: number, n: number, pixelsPerStep: number, batchSize: number): Generator<CurveBatch> {
  const batch = Math.max(1, batchSize);
  let images = new Float32Array(batch * size);
  let rows: CurveBatch['rows'] = [];
  function* push(fill: (slot: Float32Array) => void, target: number, set: (p: number) => void): Generator<CurveBatch> {
    fill(images.subarray(rows.length * size, (rows.length + 1) * size));
    rows.push({ target, set });
    if (rows.length === batch) {
      yield { images, rows };
      images = new Float32Array(batch * size);
      rows = [];
    }
  }

  // endpoints, once per (image, class)
  const ends = new Map<Float32Array, Map<number, { curve: number[]; k: number }[]>>();
  const want = (img: Float32Array, target: number, curve: number[], k: number) => {
    const byTarget = ends.get(img) ?? new Map<number, { curve: number[]; k: number }[]>();
    ends.set(img, byTarget);
    const list = byTarget.get(target) ?? [];
    byTarget.set(target, list);
    list.push({ curve, k });
  };
  specs.forEach((s, j) => {
    want(s.start, s.target, curves[j], 0);
    want(s.end, s.target, curves[j], n);
  });
  for (const [img, byTarget] of ends) {
    for (const [target, list] of byTarget) {
      yield* push((slot) => slot.set(img), target, (p) => { for (const { curve, k } of list) curve[k] = p; });
    }
  }

  // intermediate points: each spec's image is built up step by step in `current`
  const current = new Float32Array(size);
  for (let j = 0; j < specs.length; j++) {
    const s = specs[j];
    current.set(s.start);
    for (let k = 1; k < n; k++) {
      for (let q = (k - 1) * pixelsPerStep; q < k * pixelsPerStep; q++) {
        const o = s.order[q] * C;
        for (let c = 0; c < C; c++) current[o + c] = s.end[o + c];
      }
      const curve = curves[j];
      yield* push((slot) => slot.set(current), s.target, (p) => { curve[k] = p; });
    }
  }
  if (rows.length) yield { images: images.subarray(0, rows.length * size), rows };
}

function checkSpecs(shape: [number, number, number], specs: readonly CurveSpec[], pixelsPerStep: number) {
  const [H, W, C] = shape;
  const P = H * W;
  for (const s of specs) {
    if (s.start.length !== P * C || s.end.length !== P * C) throw new Error(`perturbationCurves: images must hold ${P * C} values`);
    if (s.order.length !== P) throw new Error(`perturbationCurves: the pixel order must hold ${P} indices`);
  }
  const n = Math.ceil(P / pixelsPerStep);
  return { size: P * C, n, curves: specs.map(() => new Array<number>(n + 1).fill(NaN)) };
}

const apply = (b: CurveBatch, probs: Float32Array) => {
  const classes = probs.length / b.rows.length;
  b.rows.forEach((r, i) => r.set(probs[i * classes + r.target]));
};

/** Evaluates a batch on this thread. */
function onMain(model: ModelAdapter, [H, W, C]: [number, number, number], b: CurveBatch, progress?: Progress) {
  const m = b.rows.length;
  apply(b, tf.tidy(() => model.probabilities(tf.tensor4d(b.images, [m, H, W, C])).dataSync() as Float32Array));
  progress?.tick(m);
}

/**
 * p_target at every curve point of every spec, all images packed into batches of `batchSize`
 * for `model.probabilities` (the endpoints once per distinct start/end image and class).
 */
export function perturbationCurves(model: ModelAdapter, shape: [number, number, number], specs: readonly CurveSpec[], pixelsPerStep: number, batchSize: number, progress?: Progress): number[][] {
  const { size, n, curves } = checkSpecs(shape, specs, pixelsPerStep);
  for (const b of curveBatches(specs, curves, size, shape[2], n, pixelsPerStep, batchSize)) onMain(model, shape, b, progress);
  return curves;
}

/**
 * perturbationCurves with the batches on a pool of workers (compute/worker-pool.ts): each batch
 * goes to the next free worker while the main thread builds the next batches (it evaluates a
 * batch itself only when its worker failed). The same numbers as perturbationCurves, faster on
 * more cores.
 */
export async function perturbationCurvesPooled(model: ModelAdapter, pool: WorkerPool | undefined, shape: [number, number, number], specs: readonly CurveSpec[], pixelsPerStep: number, batchSize: number, progress?: Progress): Promise<number[][]> {
  const [H, W, C] = shape;
  const { size, n, curves } = checkSpecs(shape, specs, pixelsPerStep);
  if (!pool) {
    for (const b of curveBatches(specs, curves, size, C, n, pixelsPerStep, batchSize)) {
      onMain(model, shape, b, progress);
      await yieldIfDue();
    }
    return curves;
  }
  const pending = new Set<Promise<void>>();
  for (const b of curveBatches(specs, curves, size, C, n, pixelsPerStep, batchSize)) {
    const m = b.rows.length;
    await pool.free();
    if (pool.idle) {
      // a batch whose worker stopped (the pool warns) is evaluated here instead
      const job: Promise<void> = pool.probabilities(b.images, [m, H, W, C]).then((probs) => {
        apply(b, probs);
        progress?.tick(m);
      }, () => onMain(model, shape, b, progress)).finally(() => pending.delete(job));
      pending.add(job);
    } else {
      onMain(model, shape, b, progress);
    }
  }
  await Promise.all(pending);
  return curves;
}

/** Images a call of perturbationCurves evaluates (for progress bars). */
export function perturbationCount(specs: readonly CurveSpec[], pixels: number, pixelsPerStep: number): number {
  const n = Math.ceil(pixels / pixelsPerStep);
  const starts = new Set<string>();
  const idOf = new Map<Float32Array, number>();
  const id = (a: Float32Array) => { if (!idOf.has(a)) idOf.set(a, idOf.size); return idOf.get(a)!; };
  for (const s of specs) {
    starts.add(`${id(s.start)}:${s.target}`);
    starts.add(`${id(s.end)}:${s.target}`);
  }
  return starts.size + specs.length * Math.max(0, n - 1);
}
