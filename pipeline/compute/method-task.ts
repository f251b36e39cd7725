import * as tf from '@tensorflow/tfjs';
import type { Preprocessing } from '../data.ts';
import type { LogRecord, Logger } from '../logger.ts';
import { METHODS } from '../methods/registry.ts';
import type { MethodContext, MethodDef, SampleItem } from '../methods/types.ts';
import type { ModelAdapter } from '../model/adapter.ts';
import { CaptureSink, type SinkOp } from '../release-writer.ts';

/** One method on some samples: plain data, so it can cross to a worker thread. */
export interface MethodTask {
  method: string;
  opts: Record<string, unknown>;
  samples: SampleItem[];
  /** The samples' preprocessed input [n, h, w, c], flat. */
  input: Float32Array;
  shape: [number, number, number, number];
  classes: readonly string[];
  preprocessing: Preprocessing;
  settings: MethodContext['settings'];
  /** The release's image format: pictures are encoded where the task runs. */
  imageFormat: 'png' | 'webp';
}

export interface MethodTaskResult {
  /** What the method wrote, in order, to replay into the release. */
  ops: SinkOp[];
  /** What it logged (progress bars are left to the caller). */
  logs: LogRecord[];
}

/**
 * Runs a method on the task's samples with `model`, capturing its writes and log lines. The same
 * function serves the main thread and the workers, so a sample's artifacts are the same wherever
 * it ran.
 */
export async function runMethodTask(model: ModelAdapter, task: MethodTask): Promise<MethodTaskResult> {
  const def = (METHODS as readonly MethodDef[]).find((m) => m.id === task.method);
  if (!def) throw new Error(`convlens: internal error: no method "${task.method}"`);
  const out = new CaptureSink(task.imageFormat);
  const records: LogRecord[] = [];
  const logger: Logger = {
    info: (msg) => { records.push({ level: 'info', msg }); },
    warn: (msg) => { records.push({ level: 'warn', msg }); },
    debug: (msg) => { records.push({ level: 'debug', msg }); },
    progress: () => ({ tick() {}, done() {} }),
  };
  const input = tf.tensor4d(task.input, task.shape);
  try {
    await def.run({
      model, classes: task.classes, input, samples: task.samples, preprocessing: task.preprocessing,
      out, logger, settings: task.settings,
    }, task.opts);
  } finally {
    input.dispose();
  }
  return { ops: out.ops, logs: records };
}
