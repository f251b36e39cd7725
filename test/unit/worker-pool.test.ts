import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { WorkerPool } from '../../pipeline/compute/worker-pool.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { runMethodTask, type MethodTask } from '../../pipeline/compute/method-task.ts';
import { forwardArrays } from '../../pipeline/compute/forward.ts';
import { smoothgrad } from '../../pipeline/methods/smoothgrad.ts';
import type { SinkOp } from '../../pipeline/release-writer.ts';
import { perturbationCurves, perturbationCurvesPooled, rankPixels, noiseMap } from '../../pipeline/metrics/curves.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';
import { vals } from '../helpers/tiny-models.ts';

/** Workers (worker threads with their own tfjs) against the main thread, on a saved model. */
describe('worker pool', () => {
  let modelPath: string;
  let model: ModelAdapter;
  let pool: WorkerPool | undefined;

  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    modelPath = join((await makeTinyProject()).dir, 'model');
    model = (await loadModel(modelPath)).adapter;
    pool = await WorkerPool.start({ modelPath, backend: 'wasm' }, 2, silentLogger);
  }, 120_000);

  afterAll(async () => {
    await pool?.close();
    model?.dispose();
  });

  it('starts its workers and gives the main thread\'s probabilities, bit for bit', async () => {
    expect(pool?.size).toBe(2);
    const x = Float32Array.from(vals(5 * 16 * 16 * 3, 4, 1).map(Math.abs));
    const here = tf.tidy(() => model.probabilities(tf.tensor4d(x, [5, 16, 16, 3])).dataSync() as Float32Array);
    const [a, b] = await Promise.all([pool!.probabilities(x.slice(), [5, 16, 16, 3]), pool!.probabilities(x.slice(), [5, 16, 16, 3])]);
    expect(Array.from(a)).toEqual(Array.from(here));
    expect(Array.from(b)).toEqual(Array.from(here));
    expect(pool!.idle).toBe(true);
  });

  it('a forward job gives the main thread\'s scores, probabilities and activations, bit for bit', async () => {
    const x = Float32Array.from(vals(3 * 16 * 16 * 3, 5, 1).map(Math.abs));
    const remote = await pool!.forward(x.slice(), [3, 16, 16, 3], ['conv1', 'gap']);
    const here = forwardArrays(model, x, [3, 16, 16, 3], ['conv1', 'gap']);
    expect(Array.from(remote.logits)).toEqual(Array.from(here.logits));
    expect(Array.from(remote.probs)).toEqual(Array.from(here.probs));
    expect(remote.activations.map((a) => [a.name, a.shape])).toEqual([['conv1', [3, 16, 16, 4]], ['gap', [3, 8]]]);
    remote.activations.forEach((a, i) => expect(Array.from(a.data)).toEqual(Array.from(here.activations[i].data)));
  });

  it('a method on a sample gives the main thread\'s writes, bit for bit, and its log lines', async () => {
    const input = Float32Array.from(vals(16 * 16 * 3, 6, 1).map(Math.abs));
    const task: MethodTask = {
      method: 'smoothgrad', opts: smoothgrad.options.parse({ n: 3 }),
      samples: [{ index: 4, id: 's4', source: 's4.png', display: new Uint8Array(16 * 16 * 3).fill(100), target: 1 }],
      input, shape: [1, 16, 16, 3], classes: ['a', 'b', 'c'],
      preprocessing: { size: [16, 16], channels: 3, channelOrder: 'rgb', scale: 1 / 255, mean: [0], std: [1], resize: 'fill' },
      settings: { colormap: 'turbo', batchSize: 4, channelOrder: 'rgb', seed: 0 }, imageFormat: 'png',
    };
    const here = await runMethodTask(model, task);
    const remote = await pool!.method({ ...task, input: input.slice() });
    expect(remote.ops.map((o) => o.kind)).toEqual(['encoded', 'encoded']);
    expect(remote).toEqual(here);
    const heat = remote.ops[0] as Extract<SinkOp, { kind: 'encoded' }>;
    expect(Array.from(heat.img.bytes.subarray(1, 4))).toEqual([80, 78, 71]); // "PNG"
    expect(heat.meta).toMatchObject({ id: 'smoothgrad/s4/1/heatmap', image: 's4', class: 1, stats: { seed: 4 } });
    expect(heat.raw?.shape).toEqual([16, 16]);
  });

  it('perturbation curves are the same with and without workers', async () => {
    const P = 16 * 16;
    const specs = [0, 1, 2].map((i) => ({
      start: Float32Array.from(vals(P * 3, 10 + i, 1).map(Math.abs)),
      end: new Float32Array(P * 3).fill(0.5),
      order: rankPixels(noiseMap(P, i)),
      target: i,
    }));
    const before = tf.memory().numTensors;
    const main = perturbationCurves(model, [16, 16, 3], specs, 10, 4);
    const pooled = await perturbationCurvesPooled(model, pool, [16, 16, 3], specs, 10, 4);
    expect(pooled).toEqual(main);
    expect(pooled.flat().every(Number.isFinite)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is undefined, with a debug line, when the workers cannot load the model; and for size 0', async () => {
    const logger = new MemoryLogger();
    expect(await WorkerPool.start({ modelPath: join(modelPath, 'missing'), backend: 'wasm' }, 1, logger)).toBeUndefined();
    expect(logger.records.some((r) => r.level === 'debug' && /workers unavailable \(no model at/.test(r.msg))).toBe(true);
    expect(await WorkerPool.start({ modelPath, backend: 'wasm' }, 0, logger)).toBeUndefined();
  }, 60_000);
});

describe('worker pool: a worker that dies', () => {
  it('hands its batch back to the main thread with a warning; the curves are unchanged', async () => {
    await initBackend('wasm', silentLogger);
    const modelPath = join((await makeTinyProject()).dir, 'model');
    const { adapter: model } = await loadModel(modelPath);
    const logger = new MemoryLogger();
    const pool = (await WorkerPool.start({ modelPath, backend: 'wasm' }, 1, logger))!;
    const P = 16 * 16;
    const specs = [0, 1].map((i) => ({ start: Float32Array.from(vals(P * 3, 20 + i, 1).map(Math.abs)), end: new Float32Array(P * 3), order: rankPixels(noiseMap(P, i)), target: i }));
    const main = perturbationCurves(model, [16, 16, 3], specs, 16, 4);
    // the worker is gone before the first batch reaches it
    await (pool as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots[0].worker.terminate();
    const pooled = await perturbationCurvesPooled(model, pool, [16, 16, 3], specs, 16, 4);
    expect(pooled).toEqual(main);
    expect(logger.records.some((r) => r.level === 'warn' && /a worker stopped \(exit code \d+\); its work goes to the main thread/.test(r.msg))).toBe(true);
    await pool.close();
    model.dispose();
  }, 60_000);

  it('warns when compute.workers was set and the workers cannot start', async () => {
    const logger = new MemoryLogger();
    expect(await WorkerPool.start({ modelPath: '/nonexistent/model', backend: 'wasm' }, 1, logger, true)).toBeUndefined();
    expect(logger.records.some((r) => r.level === 'warn' && /^compute\.workers: workers unavailable/.test(r.msg))).toBe(true);
  }, 60_000);
});
