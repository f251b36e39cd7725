import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { ForwardPool } from '../../pipeline/compute/forward-pool.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { perturbationCurves, perturbationCurvesPooled, rankPixels, noiseMap } from '../../pipeline/metrics/curves.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';
import { vals } from '../helpers/tiny-models.ts';

/** Forward workers (worker threads with their own tfjs) against the main thread, on a saved model. */
describe('forward pool', () => {
  let modelPath: string;
  let model: ModelAdapter;
  let pool: ForwardPool | undefined;

  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    modelPath = join((await makeTinyProject()).dir, 'model');
    model = (await loadModel(modelPath)).adapter;
    pool = await ForwardPool.start({ modelPath, backend: 'wasm' }, 2, silentLogger);
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
    expect(await ForwardPool.start({ modelPath: join(modelPath, 'missing'), backend: 'wasm' }, 1, logger)).toBeUndefined();
    expect(logger.records.some((r) => r.level === 'debug' && /forward workers unavailable \(no model at/.test(r.msg))).toBe(true);
    expect(await ForwardPool.start({ modelPath, backend: 'wasm' }, 0, logger)).toBeUndefined();
  }, 60_000);
});

describe('forward pool: a worker that dies', () => {
  it('hands its batch back to the main thread with a warning; the curves are unchanged', async () => {
    await initBackend('wasm', silentLogger);
    const modelPath = join((await makeTinyProject()).dir, 'model');
    const { adapter: model } = await loadModel(modelPath);
    const logger = new MemoryLogger();
    const pool = (await ForwardPool.start({ modelPath, backend: 'wasm' }, 1, logger))!;
    const P = 16 * 16;
    const specs = [0, 1].map((i) => ({ start: Float32Array.from(vals(P * 3, 20 + i, 1).map(Math.abs)), end: new Float32Array(P * 3), order: rankPixels(noiseMap(P, i)), target: i }));
    const main = perturbationCurves(model, [16, 16, 3], specs, 16, 4);
    // the worker is gone before the first batch reaches it
    await (pool as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots[0].worker.terminate();
    const pooled = await perturbationCurvesPooled(model, pool, [16, 16, 3], specs, 16, 4);
    expect(pooled).toEqual(main);
    expect(logger.records.some((r) => r.level === 'warn' && /a forward worker stopped \(exit code \d+\); its batches go to the main thread/.test(r.msg))).toBe(true);
    await pool.close();
    model.dispose();
  }, 60_000);

  it('warns when compute.workers was set and the workers cannot start', async () => {
    const logger = new MemoryLogger();
    expect(await ForwardPool.start({ modelPath: '/nonexistent/model', backend: 'wasm' }, 1, logger, true)).toBeUndefined();
    expect(logger.records.some((r) => r.level === 'warn' && /^compute\.workers: forward workers unavailable/.test(r.msg))).toBe(true);
  }, 60_000);
});
