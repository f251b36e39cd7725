/**
 * Peak memory of a whole report (`convlens report --no-site`, every method and metric at their
 * defaults, compute.memory at its default of 2GB, workers auto) on 4 photos, per model:
 *  - MobileNetV2 (alpha 1.0, 224 px, 1000 classes, Keras' architecture built here with
 *    tfjs-layers, seeded random weights): the issue's case, target under 2 GB;
 *  - Darknet Tiny (224 px) and SqueezeNet 1.1 as an ONNX export (96 px), from ../shared/fixtures.
 * Peak RSS is sampled from /proc every 100 ms for the child process (main thread and workers
 * together), so it is a lower bound of the true peak by at most one sampling interval's growth.
 *
 *   npx tsx bench/memory.bench.ts [budget, e.g. 2GB]
 */
import * as tf from '@tensorflow/tfjs';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initBackend } from '../pipeline/backend.ts';
import { silentLogger } from '../pipeline/logger.ts';
import { saveLayersModel } from '../pipeline/model/io.ts';

const FIXTURES = resolve(import.meta.dirname, '../../shared/fixtures');
const BIN = resolve(import.meta.dirname, '../bin/convlens.mjs');
const budget = process.argv[2] ?? '2GB';
const PHOTOS = ['chelsea.png', 'coffee.png', 'dog.jpg', 'eagle.jpg'];

/** Keras' MobileNetV2 (Sandler et al. 2018): inverted residual blocks (t, c, n, s), ReLU6, batch norm. */
function mobileNetV2(): tf.LayersModel {
  let seed = 1;
  const init = () => tf.initializers.heNormal({ seed: seed++ });
  const input = tf.input({ shape: [224, 224, 3] });
  const convBn = (x: tf.SymbolicTensor, filters: number, kernel: number, stride: number, relu: boolean) => {
    let y = tf.layers.conv2d({ filters, kernelSize: kernel, strides: stride, padding: 'same', useBias: false, kernelInitializer: init() }).apply(x) as tf.SymbolicTensor;
    y = tf.layers.batchNormalization().apply(y) as tf.SymbolicTensor;
    return relu ? tf.layers.reLU({ maxValue: 6 }).apply(y) as tf.SymbolicTensor : y;
  };
  let x = convBn(input, 32, 3, 2, true);
  let channels = 32;
  for (const [t, c, n, s] of [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      let y = t === 1 ? x : convBn(x, channels * t, 1, 1, true);
      y = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'same', useBias: false, depthwiseInitializer: init() }).apply(y) as tf.SymbolicTensor;
      y = tf.layers.batchNormalization().apply(y) as tf.SymbolicTensor;
      y = tf.layers.reLU({ maxValue: 6 }).apply(y) as tf.SymbolicTensor;
      y = convBn(y, c, 1, 1, false);
      x = stride === 1 && channels === c ? tf.layers.add().apply([x, y]) as tf.SymbolicTensor : y;
      channels = c;
    }
  }
  x = convBn(x, 1280, 1, 1, true);
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 1000, activation: 'softmax', kernelInitializer: init() }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

/** Runs the report as a child process; peak RSS in MB and wall time in s. */
function report(config: string): Promise<{ peakMb: number; secs: number; plan: string }> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BIN, 'report', '--config', config, '--no-site'], { env: { ...process.env, CI: 'true' } });
    let peak = 0;
    let log = '';
    child.stderr.on('data', (b: Buffer) => { log += b.toString(); });
    const timer = setInterval(() => {
      try {
        peak = Math.max(peak, Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024);
      } catch { /* exited */ }
    }, 100);
    child.on('exit', (code) => {
      clearInterval(timer);
      if (code !== 0) fail(new Error(`report failed (${code}):\n${log.slice(-2000)}`));
      else done({ peakMb: Math.round(peak), secs: (performance.now() - t0) / 1000, plan: /^memory: .*$/m.exec(log)?.[0] ?? '' });
    });
  });
}

await initBackend('wasm', silentLogger);
const dir = await mkdtemp(join(tmpdir(), 'convlens-memory-bench-'));
try {
  await mkdir(join(dir, 'photos'));
  for (const p of PHOTOS) await copyFile(join(FIXTURES, 'photos', p), join(dir, 'photos', p));
  const mnv2 = mobileNetV2();
  await saveLayersModel(mnv2, join(dir, 'mobilenet_v2_224'));
  console.log(`MobileNetV2 built: ${mnv2.countParams().toLocaleString('en-US')} parameters`);
  mnv2.dispose();
  const models: { name: string; path: string; input: string }[] = [
    { name: 'MobileNetV2 224 px (LayersModel)', path: join(dir, 'mobilenet_v2_224'), input: 'scale: 0.00784313725490196\n  mean: [1]' },
  ];
  if (existsSync(join(FIXTURES, 'darknet-tiny', 'model.json'))) models.push({ name: 'Darknet Tiny 224 px (LayersModel)', path: join(FIXTURES, 'darknet-tiny'), input: 'scale: 0.00392156862745098' });
  if (existsSync(join(FIXTURES, 'onnx', 'squeezenet1_1', 'model.onnx'))) models.push({ name: 'SqueezeNet 1.1 96 px (ONNX)', path: join(FIXTURES, 'onnx', 'squeezenet1_1', 'model.onnx'), input: 'scale: 0.00392156862745098\n  mean: [0.485, 0.456, 0.406]\n  std: [0.229, 0.224, 0.225]' });
  console.log(`\nbudget compute.memory: ${budget}, workers auto, 4 photos, every method and metric at its defaults, no site\n`);
  console.log('| model | peak RSS | time | plan |\n| --- | --- | --- | --- |');
  for (const m of models) {
    const config = join(dir, `${m.name.split(' ')[0]}.yaml`);
    await writeFile(config, `release: bench\nmodel:\n  path: ${m.path}\ninput:\n  ${m.input}\ndata:\n  samples: { folder: ${join(dir, 'photos')} }\ncompute:\n  backend: wasm\n  memory: ${budget}\noutput:\n  dir: ${join(dir, 'output')}\n`);
    const r = await report(config);
    console.log(`| ${m.name} | ${r.peakMb} MB | ${r.secs.toFixed(0)} s | ${r.plan.replace(/^memory: /, '')} |`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
