import * as tf from '@tensorflow/tfjs';
import type { MessagePort } from 'node:worker_threads';
import { initBackend, type ConcreteBackend } from '../backend.ts';
import { silentLogger } from '../logger.ts';
import { loadModel } from '../model/load.ts';

/** What a forward worker is started with (see forward-pool.ts). */
export interface WorkerSetup {
  modelPath: string;
  backend: ConcreteBackend;
}

export type WorkerRequest = { id: number; images: Float32Array; shape: [number, number, number, number] };
export type WorkerReply = { id: number; probs: Float32Array } | { id: number; error: string } | { ready: true } | { failed: string };

/**
 * The body of a forward worker thread: its own tfjs on the same backend, the same model loaded
 * from the same path, and softmax probabilities for every batch of images it is sent.
 */
export async function serve(port: MessagePort, setup: WorkerSetup): Promise<void> {
  let model: Awaited<ReturnType<typeof loadModel>>['adapter'];
  try {
    await initBackend(setup.backend, silentLogger);
    model = (await loadModel(setup.modelPath)).adapter;
  } catch (err) {
    port.postMessage({ failed: (err as Error).message.split('\n')[0] } satisfies WorkerReply);
    return;
  }
  port.on('message', (req: WorkerRequest) => {
    try {
      const probs = tf.tidy(() => model.probabilities(tf.tensor4d(req.images, req.shape)).dataSync() as Float32Array);
      port.postMessage({ id: req.id, probs } satisfies WorkerReply, [probs.buffer as ArrayBuffer]);
    } catch (err) {
      port.postMessage({ id: req.id, error: (err as Error).message.split('\n')[0] } satisfies WorkerReply);
    }
  });
  port.postMessage({ ready: true } satisfies WorkerReply);
}
