import type * as tf from '@tensorflow/tfjs';
import type { z } from 'zod';
import type { Logger } from '../logger.ts';
import type { ModelAdapter } from '../model/adapter.ts';
import type { Colormap } from '../render.ts';
import type { ArtifactSink } from '../release-writer.ts';
import type { ImageRef, Preprocessing } from '../data.ts';
import type { WorkerPool } from '../compute/worker-pool.ts';

export interface SampleItem {
  /** Position in the run's samples (stable however samples are split across workers). */
  index: number;
  id: string;
  source: string;
  label?: number;
  /** The image as the model saw it, 8-bit RGB [h, w, 3] (gray replicated). */
  display: Uint8Array;
  /** Class explained by default: the top-1 prediction; a binary head's positive class (head.ts). */
  target: number;
}

/** The `data.dataset` images, streamed: never all in memory at once. */
export interface DatasetAccess {
  refs: readonly ImageRef[];
  /**
   * Preprocessed batches in `refs` order; `start` is the index of the first image. The caller
   * disposes `input`.
   */
  batches(batchSize?: number): AsyncGenerator<{ input: tf.Tensor4D; refs: ImageRef[]; display: Uint8Array[]; start: number }>;
}

export interface MethodContext {
  model: ModelAdapter;
  classes: readonly string[];
  /** Sample images, preprocessed, [n, h, w, c], in the order of `samples`. */
  input: tf.Tensor4D;
  samples: readonly SampleItem[];
  /**
   * How pixels became model inputs: x = (pixel * scale - mean[c]) / std[c]. Use it to map
   * between pixel space (0-255) and input space, e.g. a black baseline or the valid input range.
   */
  preprocessing: Preprocessing;
  /** Present when viz.yaml has `data.dataset`; methods that declare `needs.dataset` get it. */
  dataset?: DatasetAccess;
  /** Where artifacts go: the release, or a capture a worker sends back (release-writer.ts). */
  out: ArtifactSink;
  logger: Logger;
  /** seed: compute.seed, the seed every random draw of the run starts from (methods add their own `seed` option). */
  settings: { colormap: Colormap; batchSize: number; channelOrder: 'rgb' | 'bgr'; seed: number };
  /**
   * Worker threads with their own copy of the model's own weights, for batches of plain forward
   * passes (the metrics' curves, the dataset passes); absent: everything runs on the main thread.
   */
  pool?: WorkerPool;
}

export interface OptionProblem {
  /** Key inside the method's section, e.g. "layer". */
  key: string;
  message: string;
}

/**
 * The method contract: an id (used in viz.yaml, the manifest and URLs), a title, the paper,
 * what it needs, a zod schema of its options (every field defaulted, `enabled` included), an
 * optional check against the loaded model, and one compute function.
 */
export interface MethodDef<S extends z.ZodObject = z.ZodObject> {
  id: string;
  title: string;
  paper?: string;
  /**
   * What the method needs, checked before any work; the method is skipped, with the reason, where
   * it is missing: `dataset` (data.dataset in viz.yaml; run.ts), `spatialLayer` (a layer with a
   * spatial output) and `gapHead` (a head CAM reads; both methods/needs.ts).
   */
  needs: { dataset?: boolean; spatialLayer?: boolean; gapHead?: boolean };
  /**
   * Each sample's artifacts depend on that sample alone: the run calls `run` once per sample, on
   * the worker pool or the main thread, and writes the artifacts in sample order, so results do
   * not depend on the number of workers.
   */
  perSample?: boolean;
  options: S;
  check?(opts: z.infer<S>, model: ModelAdapter, classes?: readonly string[]): OptionProblem[];
  /**
   * Model passes per sample for one map (a forward pass, or a forward and a backward pass), for
   * cost planning: the randomization test reruns only methods up to
   * `metrics.randomization.maxPasses` by default. Absent: 1.
   */
  passes?(opts: z.infer<S>, inputSize: [number, number]): number;
  run(ctx: MethodContext, opts: z.infer<S>): Promise<void>;
}

/** A method's declared passes per sample and map (default 1). */
export function methodPasses(def: MethodDef, opts: Record<string, unknown>, inputSize: [number, number]): number {
  return def.passes ? def.passes(opts as never, inputSize) : 1;
}

export function defineMethod<S extends z.ZodObject>(def: MethodDef<S>): MethodDef<S> {
  return def;
}

/** Checks that a layer option names a layer of the model (message with the nearest names). */
export function layerProblem(model: ModelAdapter, key: string, name: string | undefined): OptionProblem[] {
  if (name === undefined) return [];
  try {
    model.layer(name);
    return [];
  } catch (err) {
    return [{ key, message: (err as Error).message }];
  }
}
