import type { LayerInfo } from '../model/adapter.ts';

/**
 * Memory a run may use, split between the tfjs instances (the main thread and each worker, each
 * with its own wasm heap, which grows and never shrinks). Constants measured on the wasm backend
 * (tfjs 4.22, MobileNetV2 at 224 px, 2026-12): a process with tfjs and a loaded model holds about
 * 250 MB before any pass; a forward pass (intermediates released as they are consumed) grows the
 * heap to about 4 floats per element of the widest activation and example (batch 32: 534 MiB for
 * 1.2 M-element activations); a backward pass keeps every activation and its gradient, about
 * 3 floats per element of all activations and example (batch 3: 735 MiB for 21.8 M elements).
 */
const PROCESS_BASE = 250 * 2 ** 20;
/** A worker's own tfjs, JS heap and message buffers, besides the model's weights (held twice: the weight tensors and their load buffer). */
const INSTANCE_BASE = 120 * 2 ** 20;
const FORWARD_BYTES_PER_ELEMENT = 16;
const BACKWARD_BYTES_PER_ELEMENT = 12;
/** Plan for this share of the budget: the estimates are not exact and the heap rounds up. */
const MARGIN = 0.85;
export const MAX_BACKWARD_BATCH = 64;

/** `2GB`, `1.5 GB`, `800MB` -> bytes (binary units: 1 GB = 2^30 bytes). */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(MB|GB)\s*$/i.exec(text);
  if (!m) throw new Error(`not a memory size: "${text}" (write e.g. 2GB or 800MB)`);
  return Math.round(Number(m[1]) * 2 ** (m[2].toUpperCase() === 'GB' ? 30 : 20));
}

export function formatBytes(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GB` : `${Math.round(bytes / 2 ** 20)} MB`;
}

/** What a model costs per example, from its layer shapes. */
export interface ModelFootprint {
  /** Elements of the input and every layer output, per example. */
  activationElements: number;
  /** Elements of the largest single layer output (or the input), per example. */
  widestElements: number;
  /** Bytes of the weights (float32). */
  weightBytes: number;
}

export function modelFootprint(layers: readonly LayerInfo[], inputShape: readonly number[], params: number): ModelFootprint {
  const sizes = [inputShape, ...layers.map((l) => l.outputShape.slice(1))].map((s) => s.reduce<number>((a, b) => a * (b ?? 1), 1));
  return { activationElements: sizes.reduce((a, b) => a + b, 0), widestElements: Math.max(...sizes), weightBytes: params * 4 };
}

export interface MemoryPlan {
  /** Worker threads to start. */
  workers: number;
  /** Largest batch of one forward pass (a caller's bigger batch is cut into pieces of this size). */
  forwardBatch: number;
  /** Examples per backward pass. */
  backwardBatch: number;
  /** The peak the plan expects for the whole process. */
  estimatedPeak: number;
  /** Set when even one instance at batch 1 needs more than the budget. */
  overBudget?: string;
}

/**
 * Splits `budget` bytes between the main thread and up to `wantedWorkers` workers so that every
 * instance can run a backward pass of at least one example and a forward pass of at least one:
 * fewer workers when the model is too big for all of them, then the largest batches that fit each
 * instance's share (backward at most MAX_BACKWARD_BATCH, forward at most `batchSize`). An explicit
 * worker count (`fixedWorkers`) is kept even when it does not fit; the batches then shrink to 1
 * and `overBudget` says so.
 */
export function planMemory(opts: { budget: number; footprint: ModelFootprint; wantedWorkers: number; fixedWorkers?: boolean; batchSize: number }): MemoryPlan {
  const { footprint: f, batchSize } = opts;
  const usable = opts.budget * MARGIN - PROCESS_BASE;
  const instanceFixed = INSTANCE_BASE + 2 * f.weightBytes;
  const perBackward = f.activationElements * BACKWARD_BYTES_PER_ELEMENT;
  const perForward = f.widestElements * FORWARD_BYTES_PER_ELEMENT;
  const minimum = instanceFixed + Math.max(perBackward, perForward);
  const fit = Math.max(1, Math.floor(usable / minimum));
  const instances = opts.fixedWorkers ? opts.wantedWorkers + 1 : Math.min(opts.wantedWorkers + 1, fit);
  const share = usable / instances - instanceFixed;
  const backwardBatch = Math.max(1, Math.min(MAX_BACKWARD_BATCH, Math.floor(share / perBackward)));
  const forwardBatch = Math.max(1, Math.min(batchSize, Math.floor(share / perForward)));
  const heap = Math.max(backwardBatch * perBackward, forwardBatch * perForward);
  const plan: MemoryPlan = { workers: instances - 1, forwardBatch, backwardBatch, estimatedPeak: PROCESS_BASE + instances * (instanceFixed + heap) };
  if (share < Math.max(perBackward, perForward)) {
    plan.overBudget = `${instances === 1 ? 'one tfjs instance' : `${instances} tfjs instances (main thread and ${instances - 1} workers)`} need about ${formatBytes(plan.estimatedPeak)} for this model at batch 1`;
  }
  return plan;
}
