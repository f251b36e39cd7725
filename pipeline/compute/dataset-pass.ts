import type { ImageRef } from '../data.ts';
import type { DatasetAccess } from '../methods/types.ts';
import type { ModelAdapter } from '../model/adapter.ts';
import type { WorkerPool } from './worker-pool.ts';
import { forwardArrays, type ForwardResult } from './forward.ts';

/** One dataset batch after its forward pass. */
export interface ForwardBatch extends ForwardResult {
  refs: ImageRef[];
  display: Uint8Array[];
  /** Index of the batch's first image in the dataset. */
  start: number;
  /** Images in the batch. */
  size: number;
}

/**
 * The forward pass of every dataset batch (scores, probabilities by the head, and the named
 * activations, as flat arrays), in dataset order. With a pool, batches go to the next free worker
 * while the main thread decodes the next ones (it computes a batch itself only when its worker
 * failed); up to one batch per worker is in flight. Without one, the main thread does all. The
 * batches are the same whatever the number of workers, and so are the numbers.
 */
export async function* forwardPass(ctx: { model: Pick<ModelAdapter, 'forward' | 'head'>; dataset?: DatasetAccess; pool?: WorkerPool }, layers: readonly string[], batchSize?: number): AsyncGenerator<ForwardBatch> {
  if (!ctx.dataset) return;
  const inFlight: { meta: Omit<ForwardBatch, keyof ForwardResult>; result: Promise<ForwardResult> }[] = [];
  const names = [...layers];
  for await (const b of ctx.dataset.batches(batchSize)) {
    const shape = b.input.shape as [number, number, number, number];
    const images = b.input.dataSync() as Float32Array;
    b.input.dispose();
    const pool = ctx.pool;
    if (pool) await pool.free();
    const result = pool?.idle
      ? pool.forward(images.slice(), shape, names).catch(() => forwardArrays(ctx.model, images, shape, names))
      : Promise.resolve(forwardArrays(ctx.model, images, shape, names));
    inFlight.push({ meta: { refs: b.refs, display: b.display, start: b.start, size: shape[0] }, result });
    while (inFlight.length > Math.max(0, (pool?.size ?? 0) - 1)) {
      const next = inFlight.shift()!;
      yield { ...next.meta, ...(await next.result) };
    }
  }
  for (const next of inFlight) yield { ...next.meta, ...(await next.result) };
}
