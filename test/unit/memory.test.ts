/**
 * The memory budget: the plan splits it between the main thread and the workers (fewer workers
 * for a model that does not fit them all, the batches that fit each share), and the adapters keep
 * to it: a forward batch above the limit runs in pieces with the same values, and a LayersModel's
 * forward pass frees each activation once read, so its peak is a few activations, not all.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { formatBytes, parseBytes, planMemory } from '../../pipeline/compute/memory.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';

const MB = 2 ** 20;

describe('planMemory', () => {
  it('parses and prints sizes', () => {
    expect(parseBytes('2GB')).toBe(2 * 2 ** 30);
    expect(parseBytes(' 1.5 gb ')).toBe(1.5 * 2 ** 30);
    expect(parseBytes('800MB')).toBe(800 * MB);
    expect(() => parseBytes('2G')).toThrow(/not a memory size: "2G" \(write e\.g\. 2GB or 800MB\)/);
    expect(formatBytes(1.75 * 2 ** 30)).toBe('1.8 GB');
    expect(formatBytes(300 * MB)).toBe('300 MB');
  });

  // budget 2 GiB: usable = 0.85 * 2048 MB - 250 MB = 1490.8 MB
  it('a model that fits every worker: all of them, and the batches that fit each share', () => {
    // per example: 1 M activation elements (backward 12 MB), widest 0.1 M (forward 1.6 MB); weights 10 MB
    const plan = planMemory({ budget: parseBytes('2GB'), footprint: { activationElements: 2 ** 20, widestElements: 0.1 * 2 ** 20, weightBytes: 10 * MB }, wantedWorkers: 2, batchSize: 32 });
    // share = 1490.8 / 3 - (120 + 20) = 356.9 MB -> backward floor(356.9 / 12) = 29, forward min(32, floor(356.9 / 1.6)) = 32
    expect(plan).toMatchObject({ workers: 2, backwardBatch: 29, forwardBatch: 32 });
    expect(plan.overBudget).toBeUndefined();
  });

  it('a big model: fewer workers, so that each instance can run one example', () => {
    // backward 400 MB per example: minimum per instance 120 + 400 = 520 MB -> floor(1490.8 / 520) = 2 instances
    const plan = planMemory({ budget: parseBytes('2GB'), footprint: { activationElements: (400 / 12) * 2 ** 20, widestElements: 2 ** 20, weightBytes: 0 }, wantedWorkers: 2, batchSize: 32 });
    // share = 1490.8 / 2 - 120 = 625.4 MB -> backward 1, forward floor(625.4 / 16) = 39 -> 32
    expect(plan).toMatchObject({ workers: 1, backwardBatch: 1, forwardBatch: 32 });
    expect(plan.estimatedPeak).toBeLessThanOrEqual(parseBytes('2GB'));
  });

  it('an explicit worker count is kept; over the budget, batches of 1 and the reason', () => {
    const plan = planMemory({ budget: parseBytes('800MB'), footprint: { activationElements: (400 / 12) * 2 ** 20, widestElements: 2 ** 20, weightBytes: 0 }, wantedWorkers: 3, fixedWorkers: true, batchSize: 32 });
    expect(plan).toMatchObject({ workers: 3, backwardBatch: 1, forwardBatch: 1 });
    expect(plan.overBudget).toMatch(/^4 tfjs instances \(main thread and 3 workers\) need about 2\.\d GB for this model at batch 1$/);
  });
});

describe('the adapters keep to the limits', () => {
  let model: tf.LayersModel;
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    // a deep chain of wide activations: 8 conv layers of 32 x 32 x 16
    const layers: tf.layers.Layer[] = [tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c0', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) })];
    for (let i = 1; i < 8; i++) layers.push(tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', name: `c${i}`, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 + i }) }));
    layers.push(tf.layers.globalAveragePooling2d({ name: 'gap' }), tf.layers.dense({ units: 4, name: 'out', kernelInitializer: tf.initializers.glorotUniform({ seed: 20 }) }));
    model = tf.sequential({ layers });
  });

  it('a forward batch above the limit runs in pieces: the same logits and activations, bit for bit', () => {
    const a = new LayersAdapter(model);
    const x = tf.randomUniform([7, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const whole = a.forward(x, ['c3', 'gap']);
    a.limitBatches({ forward: 3, backward: a.backwardBatch });
    expect(a.forwardBatch).toBe(3);
    const pieces = a.forward(x, ['c3', 'gap']);
    expect(Array.from(pieces.logits.dataSync())).toEqual(Array.from(whole.logits.dataSync()));
    for (const k of ['c3', 'gap']) expect(Array.from(pieces.activations.get(k)!.dataSync())).toEqual(Array.from(whole.activations.get(k)!.dataSync()));
    tf.dispose([x, whole.logits, pieces.logits, ...whole.activations.values(), ...pieces.activations.values()]);
  });

  it('a forward pass frees each activation once read: its peak is a few activations, not all of them', async () => {
    const a = new LayersAdapter(model);
    const x = tf.randomUniform([16, 32, 32, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const activationBytes = 16 * 32 * 32 * 16 * 4; // one conv output of the batch: 1 MiB
    const before = tf.memory().numTensors;
    const { peakBytes } = await tf.profile(() => { a.forward(x).logits.dispose(); });
    expect(tf.memory().numTensors).toBe(before);
    // kept to the end, the eight conv outputs and their pre-activations would be 16 MiB; released,
    // a layer's input, its convolution, bias and ReLU are alive at once (about 4 MiB)
    expect(peakBytes).toBeLessThan(6 * activationBytes);
    expect(peakBytes).toBeGreaterThan(activationBytes);
    x.dispose();
  });
});
