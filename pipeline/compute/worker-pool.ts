import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../logger.ts';
import type { MethodTask, MethodTaskResult } from './method-task.ts';
import type { ForwardResult } from './forward.ts';
import type { WorkerJob, WorkerReply, WorkerSetup } from './worker.ts';

const ENTRY = fileURLToPath(new URL('./worker.mjs', import.meta.url));

interface Slot {
  worker: Worker;
  busy: boolean;
  /** Jobs it finished. */
  jobs: number;
  /** Exited or failed: takes no more batches. */
  dead: boolean;
}

/**
 * Work on more cores. In Node the wasm and cpu backends run one thread per tfjs instance (see
 * the tfjs note), so worker threads, each with its own tfjs on the same backend and the model
 * loaded again from the same path, take jobs beside the main thread: batches of forward passes
 * and methods on some samples (worker.ts). Their models hold the model's own weights: never use
 * the pool while weights are swapped (the randomization test). Workers run the same code on the
 * same inputs, so results are bit-identical to the main thread's.
 */
export class WorkerPool {
  private readonly slots: Slot[];
  private readonly waiting = new Map<number, { resolve: (p: never) => void; reject: (e: Error) => void; slot: Slot }>();
  private nextId = 0;
  /** Callers of `free()` waiting for a worker. */
  private waiters: (() => void)[] = [];

  private constructor(slots: Slot[], private readonly logger: Logger) {
    this.slots = slots;
    for (const slot of slots) {
      // a worker that dies (out of memory, a wasm abort) fails its batch instead of hanging the run
      const die = (why: string) => {
        if (slot.dead) return;
        slot.dead = true;
        this.logger.warn(`a worker stopped (${why}); its work goes to the main thread`);
        this.wake();
        for (const [id, w] of this.waiting) {
          if (w.slot !== slot) continue;
          this.waiting.delete(id);
          w.reject(new Error(`worker stopped: ${why}`));
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
        w.slot.jobs++;
        this.wake();
        if ('result' in msg) w.resolve(msg.result as never);
        else w.reject(new Error(`worker: ${msg.error}`));
      });
    }
  }

  /**
   * Workers to start by default: one per core, at most 8, when there is more than one core (the
   * main thread then only hands out work and writes the release); none on one core.
   */
  static defaultSize(): number {
    const cores = availableParallelism();
    return cores > 1 ? Math.min(8, cores) : 0;
  }

  /**
   * Starts `size` workers and waits until each has loaded the model; undefined (with a debug
   * line) when size is 0 or any worker cannot start, so callers fall back to the main thread.
   */
  static async start(setup: WorkerSetup, size: number, logger: Logger, explicit = false): Promise<WorkerPool | undefined> {
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
      const line = `workers unavailable (${(err as Error).message}); everything runs on the main thread`;
      if (explicit) logger.warn(`compute.workers: ${line}`);
      else logger.debug(line);
      await Promise.all(workers.map((w) => w.terminate()));
      return undefined;
    }
    for (const w of workers) w.removeAllListeners('exit').removeAllListeners('error');
    logger.debug(`workers: ${size}`);
    return new WorkerPool(workers.map((worker) => ({ worker, busy: false, dead: false, jobs: 0 })), logger);
  }

  get size(): number {
    return this.slots.length;
  }

  /** Whether a worker is free to take a batch now. */
  get idle(): boolean {
    return this.slots.some((s) => !s.busy && !s.dead);
  }

  /** Whether any worker is still running. */
  get alive(): boolean {
    return this.slots.some((s) => !s.dead);
  }

  /** Resolves when a worker is free, or when none is left alive (check `idle` after). */
  free(): Promise<void> {
    if (this.idle || !this.alive) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }

  /** Probabilities [m * classes] of images [m, H, W, C] on a free worker (the images are copied, so the caller can still use them). */
  probabilities(images: Float32Array, shape: [number, number, number, number]): Promise<Float32Array> {
    return this.submit({ kind: 'probabilities', images, shape });
  }

  /** Scores, probabilities and the named activations of a batch, on a free worker. */
  forward(images: Float32Array, shape: [number, number, number, number], layers: string[]): Promise<ForwardResult> {
    return this.submit({ kind: 'forward', images, shape, layers });
  }

  /** A method on some samples, on a free worker (compute/method-task.ts). */
  method(task: MethodTask): Promise<MethodTaskResult> {
    return this.submit({ kind: 'method', task });
  }

  private submit<R>(job: WorkerJob): Promise<R> {
    const slot = this.slots.find((s) => !s.busy && !s.dead);
    if (!slot) return Promise.reject(new Error('WorkerPool: no free worker (check idle first)'));
    slot.busy = true;
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (p: never) => void, reject, slot });
      slot.worker.postMessage({ id, job });
    });
  }

  async close(): Promise<void> {
    this.logger.debug(`workers: jobs done ${this.slots.map((s) => s.jobs).join(', ')}`);
    for (const s of this.slots) s.dead = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    for (const w of this.waiting.values()) w.reject(new Error('worker pool closed'));
    this.waiting.clear();
    this.wake();
  }
}
