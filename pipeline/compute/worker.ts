import * as tf from '@tensorflow/tfjs';
import type { MessagePort } from 'node:worker_threads';
import { initBackend, type ConcreteBackend } from '../backend.ts';
import { silentLogger } from '../logger.ts';
import { loadModel } from '../model/load.ts';
import { forwardArrays, type ForwardResult } from './forward.ts';
import { runMethodTask, type MethodTask, type MethodTaskResult } from './method-task.ts';

/** What a worker is started with (see worker-pool.ts). */
export interface WorkerSetup {
  modelPath: string;
  backend: ConcreteBackend;
  /** The batch limits of the run's memory plan (compute/memory.ts). */
  limits?: { forward: number; backward: number };
}

export type WorkerJob =
  | { kind: 'probabilities'; images: Float32Array; shape: [number, number, number, number] }
  | { kind: 'forward'; images: Float32Array; shape: [number, number, number, number]; layers: string[] }
  | { kind: 'method'; task: MethodTask };

export type WorkerRequest = { id: number; job: WorkerJob };
export type WorkerReply = { id: number; result: Float32Array | ForwardResult | MethodTaskResult } | { id: number; error: string } | { ready: true } | { failed: string };

/** Buffers to move rather than copy back to the main thread. */
function transferables(result: Float32Array | ForwardResult | MethodTaskResult): ArrayBuffer[] {
  if (result instanceof Float32Array) return [result.buffer as ArrayBuffer];
  if ('probs' in result) return [result.logits.buffer, result.probs.buffer, ...result.activations.map((a) => a.data.buffer)] as ArrayBuffer[];
  return result.ops.flatMap((op) => (op.kind === 'encoded' ? [op.img.bytes.buffer, ...(op.raw ? [op.raw.data.buffer] : [])] : [])) as ArrayBuffer[];
}

/**
 * The body of a worker thread: its own tfjs on the same backend, the same model loaded from the
 * same path, and the jobs it is sent: probabilities of a batch, a forward pass with activations,
 * or a method on some samples (compute/method-task.ts).
 */
export async function serve(port: MessagePort, setup: WorkerSetup): Promise<void> {
  let model: Awaited<ReturnType<typeof loadModel>>['adapter'];
  try {
    await initBackend(setup.backend, silentLogger);
    model = (await loadModel(setup.modelPath)).adapter;
    if (setup.limits) model.limitBatches(setup.limits);
  } catch (err) {
    port.postMessage({ failed: (err as Error).message.split('\n')[0] } satisfies WorkerReply);
    return;
  }
  // one job at a time, in the order they came
  let chain = Promise.resolve();
  port.on('message', (req: WorkerRequest) => {
    chain = chain.then(async () => {
      try {
        const { job } = req;
        const result = job.kind === 'probabilities'
          ? tf.tidy(() => model.probabilities(tf.tensor4d(job.images, job.shape)).dataSync() as Float32Array)
          : job.kind === 'forward'
            ? forwardArrays(model, job.images, job.shape, job.layers)
            : await runMethodTask(model, job.task);
        port.postMessage({ id: req.id, result } satisfies WorkerReply, transferables(result));
      } catch (err) {
        port.postMessage({ id: req.id, error: (err as Error).message.split('\n')[0] } satisfies WorkerReply);
      }
    });
  });
  port.postMessage({ ready: true } satisfies WorkerReply);
}
