import * as tf from '@tensorflow/tfjs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { type Logger, MemoryLogger } from '../../pipeline/logger.ts';
import type { DatasetAccess, MethodContext, MethodDef, SampleItem } from '../../pipeline/methods/types.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { decodeNpy } from '../../pipeline/npy.ts';
import { ReleaseWriter } from '../../pipeline/release-writer.ts';

/** What the test helpers make: a method context whose `out` is a real release writer. */
export type TestContext = MethodContext & { logger: Logger; out: ReleaseWriter };

/**
 * A MethodContext over a model and an input batch, writing into a temp release folder
 * (`ctx.out.staging`). Samples get ids s0, s1, ... and a gray display image.
 */
export async function methodContext(model: ModelAdapter, input: tf.Tensor4D, opts: {
  classes?: string[];
  targets?: number[];
  dataset?: DatasetAccess;
  logger?: Logger;
  colormap?: MethodContext['settings']['colormap'];
  preprocessing?: Partial<MethodContext['preprocessing']>;
} = {}): Promise<TestContext> {
  const out = new ReleaseWriter(await mkdtemp(join(tmpdir(), 'convlens-method-')), 'r', 'png');
  await out.open();
  const [n, h, w] = input.shape;
  const targets = opts.targets ?? Array.from(await tf.tidy(() => tf.argMax(model.forward(input).logits, 1)).data());
  const samples: SampleItem[] = Array.from({ length: n }, (_, i) => ({
    index: i, id: `s${i}`, source: `s${i}.png`, display: new Uint8Array(h * w * 3).fill(128), target: targets[i],
  }));
  return {
    model,
    classes: opts.classes ?? Array.from({ length: model.numClasses }, (_, i) => `class ${i}`),
    input,
    samples,
    preprocessing: {
      size: [h, w], channels: input.shape[3] === 1 ? 1 : 3, channelOrder: 'rgb', scale: 1 / 255, mean: [0], std: [1], resize: 'fill',
      ...opts.preprocessing,
    },
    dataset: opts.dataset,
    out,
    logger: opts.logger ?? new MemoryLogger(),
    settings: { colormap: opts.colormap ?? 'gray', batchSize: 16, channelOrder: 'rgb', seed: 0 },
  };
}

/** Runs a method and asserts it left no tensors behind. */
export async function runMethod<S extends MethodDef>(method: S, ctx: TestContext, options: Record<string, unknown> = {}) {
  const before = tf.memory().numTensors;
  await method.run(ctx, method.options.parse(options));
  expect(tf.memory().numTensors, `${method.id} leaked tensors`).toBe(before);
  return ctx.out.artifacts;
}

/** Reads an artifact's raw .npy. */
export async function readRaw(ctx: TestContext, artifact: { raw?: { path: string } }) {
  if (!artifact.raw) throw new Error('artifact has no raw data');
  return decodeNpy(new Uint8Array(await readFile(join(ctx.out.staging, artifact.raw.path))));
}
