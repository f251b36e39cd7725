import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../logger.ts';
import type { WorkerReply, WorkerSetup } from './forward-worker.ts';

const ENTRY = fileURLToPath(new URL('./forward-worker.mjs', import.meta.url));

interface Slot {
  worker: Worker;
  busy: boolean;
  /** Exited or failed: takes no more batches. */
  dead: boolean;
}

/**
 * Forward passes on more cores. In Node the wasm and cpu backends run one thread per tfjs
 * instance (see the tfjs note), so worker threads, each with its own tfjs on the same backend and
 * the model loaded again from the same path, evaluate batches beside the main thread. The
 * probabilities are those of the model's own weights: never use the pool while weights are
 * swapped (the randomization test). Workers run the same code on the same inputs, so results
 * are bit-identical to the main thread's.
 */
export class ForwardPool {
  private readonly slots: Slot[];
  private readonly waiting = new Map<number, { resolve: (p: Float32Array) => void; reject: (e: Error) => void; slot: Slot }>();
  private nextId = 0;

  private constructor(slots: Slot[], private readonly logger: Logger) {
    this.slots = slots;
    for (const slot of slots) {
      // a worker that dies (out of memory, a wasm abort) fails its batch instead of hanging the run
      const die = (why: string) => {
        if (slot.dead) return;
        slot.dead = true;
        this.logger.warn(`a forward worker stopped (${why}); its batches go to the main thread`);
        for (const [id, w] of this.waiting) {
          if (w.slot !== slot) continue;
          this.waiting.delete(id);
          w.reject(new Error(`forward worker stopped: ${why}`));
        }
      };
      slot.worker.on('error', (err) => die(err.message));
      slot.worker.on('exit', (code) => die(`exit code ${code}`));
      slot.worker.on('message', (msg: WorkerReply) => {
        if (!('id' in msg)) return;
        const w = this.waiting.get(msg.id);
        if (!w) return;
        this.waiting.delete(msg.id);
        w.slot.busy = false;
        if ('probs' in msg) w.resolve(msg.probs);
        else w.reject(new Error(`forward worker: ${msg.error}`));
      });
    }
  }

  /** Workers to start by default: one per core beyond the main thread's, at most 7. */
  static defaultSize(): number {
    return Math.max(0, Math.min(7, availableParallelism() - 1));
  }

  /**
   * Starts `size` workers and waits until each has loaded the model; undefined (with a debug
   * line) when size is 0 or any worker cannot start, so callers fall back to the main thread.
   */
  static async start(setup: WorkerSetup, size: number, logger: Logger, explicit = false): Promise<ForwardPool | undefined> {
    if (size <= 0) return undefined;
    const workers = Array.from({ length: size }, () => new Worker(ENTRY, { workerData: setup }));
    try {
      await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
        const onMessage = (msg: WorkerReply) => {
          if ('ready' in msg) { w.off('message', onMessage); resolve(); }
          if ('failed' in msg) reject(new Error(msg.failed));
        };
        w.on('message', onMessage);
        w.once('error', reject);
        w.once('exit', (code) => reject(new Error(`exited with code ${code}`)));
      })));
    } catch (err) {
      const line = `forward workers unavailable (${(err as Error).message}); forward passes stay on the main thread`;
      if (explicit) logger.warn(`compute.workers: ${line}`);
      else logger.debug(line);
      await Promise.all(workers.map((w) => w.terminate()));
      return undefined;
    }
    for (const w of workers) w.removeAllListeners('exit').removeAllListeners('error');
    logger.debug(`forward workers: ${size}`);
    return new ForwardPool(workers.map((worker) => ({ worker, busy: false, dead: false })), logger);
  }

  get size(): number {
    return this.slots.length;
  }

  /** Whether a worker is free to take a batch now. */
  get idle(): boolean {
    return this.slots.some((s) => !s.busy && !s.dead);
  }

  /** Softmax probabilities [m * classes] of images [m, H, W, C] on a free worker (the images are copied, so the caller can still use them). */
  probabilities(images: Float32Array, shape: [number, number, number, number]): Promise<Float32Array> {
    const slot = this.slots.find((s) => !s.busy && !s.dead);
    if (!slot) return Promise.reject(new Error('ForwardPool.probabilities: no free worker (check idle first)'));
    slot.busy = true;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, slot });
      slot.worker.postMessage({ id, images, shape });
    });
  }

  async close(): Promise<void> {
    for (const s of this.slots) s.dead = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    for (const w of this.waiting.values()) w.reject(new Error('forward pool closed'));
    this.waiting.clear();
  }
}
