/**
 * `convlens init` writes a viz.yaml that runs as written: for a LayersModel with its labels file
 * and an ImageFolder, and for a PyTorch ONNX export with a flat image folder; the model's facts
 * (input, head, last spatial layer, CAM or not) are read off the model; it never overwrites a
 * file unless told to. `convlens layers` keeps long names readable.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../pipeline/backend.ts';
import { layerTable } from '../../pipeline/cli.ts';
import { initConfig } from '../../pipeline/init.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { saveLayersModel } from '../../pipeline/model/io.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/convlens.mjs');
const ONNX = resolve(import.meta.dirname, '../../../shared/fixtures/onnx/squeezenet1_1/model.onnx');

async function convlens(args: string[], cwd?: string) {
  try {
    const r = await run(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, CI: 'true' }, maxBuffer: 1 << 24 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('convlens init', () => {
  it('a LayersModel and an ImageFolder: a commented viz.yaml with the model\'s facts that runs as written', async () => {
    const p = await makeTinyProject();
    const out = join(p.dir, 'new', 'viz.yaml');
    await mkdir(join(p.dir, 'new'));
    const r = await convlens(['init', '--model', 'model', '--images', 'images', '--out', out], p.dir);
    expect(r.stderr).toMatch(/wrote .*viz\.yaml: layers-model, input 16x16x3, softmax/);
    expect(r.code).toBe(0);
    const text = await readFile(out, 'utf8');
    expect(text).toMatch(/CHECK these against how the model was trained/);
    const cfg = parse(text);
    expect(cfg.model).toEqual({ path: '../model', labels: '../model/labels.txt' });
    expect(cfg.input).toMatchObject({ size: [16, 16], channels: 3, scale: 1 / 255, mean: [0], std: [1], resize: 'fill' });
    expect(cfg.data.samples).toEqual({ folder: '../images', limit: 8 });
    expect(cfg.data.dataset.folder).toBe('../images');
    expect(cfg.methods['grad-cam'].layer).toBe('conv2');
    expect(cfg.methods.cam).toBeUndefined(); // GAP + dense: CAM runs
    // runs as written
    const rep = await convlens(['report', '--config', out, '--no-site']);
    expect(rep.stderr).not.toMatch(/warning: viz\.yaml/); // nothing about the config itself
    expect(rep.code).toBe(0);
    expect(existsSync(join(p.dir, 'new', 'output', 'releases', 'v1', 'manifest.json'))).toBe(true);
    // never overwrites without --force
    const again = await convlens(['init', '--model', 'model', '--out', out], p.dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists; convlens init does not overwrite it\n  Choose another file with --out, or pass --force/);
    expect((await convlens(['init', '--model', 'model', '--out', out, '--force'], p.dir)).code).toBe(0);
    expect((await convlens(['init'])).code).toBe(2);
  }, 180_000);

  it.skipIf(!existsSync(ONNX))('an ONNX export: torchvision\'s normalization spelled out, CAM found, the report runs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'convlens-init-onnx-'));
    await mkdir(join(dir, 'photos'));
    for (let i = 0; i < 2; i++) {
      await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 200 - 90 * i, g: 40, b: 90 * i } } }).png().toFile(join(dir, 'photos', `p${i}.png`));
    }
    const r = await convlens(['init', '--model', ONNX, '--images', 'photos'], dir);
    expect(r.code).toBe(0);
    const cfg = parse(await readFile(join(dir, 'viz.yaml'), 'utf8'));
    expect(cfg.input).toMatchObject({ size: [96, 96], channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    expect(cfg.model.labels).toMatch(/squeezenet1_1\/labels\.txt$/);
    expect(cfg.methods['grad-cam'].layer).toBe('/features/features.12/Concat');
    await writeFile(join(dir, 'viz.yaml'), `${await readFile(join(dir, 'viz.yaml'), 'utf8')}\n  class-visualization: { steps: 2 }\n  integrated-gradients: { steps: 4 }\n  smoothgrad: { n: 2 }\n  occlusion: { size: 48, stride: 48 }\nmetrics: { enabled: false }\n`);
    const rep = await convlens(['report', '--config', 'viz.yaml', '--no-site'], dir);
    expect(rep.stderr).toMatch(/^cam: \d+ artifacts/m);
    expect(rep.code).toBe(0);
  }, 180_000);
});

describe('convlens init on a binary classifier', () => {
  it('a one-name labels file is the positive class: the head reads as the report will show it', async () => {
    await initBackend('wasm', silentLogger);
    const dir = await mkdtemp(join(tmpdir(), 'convlens-init-binary-'));
    const model = tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 2, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 1, activation: 'sigmoid', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ] });
    await saveLayersModel(model, join(dir, 'model'));
    model.dispose();
    await writeFile(join(dir, 'model', 'labels.txt'), 'dog\n');
    const logger = new MemoryLogger();
    await initConfig({ model: join(dir, 'model'), out: join(dir, 'viz.yaml'), logger });
    const text = await readFile(join(dir, 'viz.yaml'), 'utf8');
    expect(text).toMatch(/# head: binary: .*p\(dog\) = sigmoid\(z\)/);
    expect(logger.text()).toMatch(/p\(dog\) = sigmoid\(z\)/);
  });
});

describe('convlens layers', () => {
  it('long names get their own line; the other columns stay aligned', () => {
    const text = layerTable([
      { name: 'input_conv', type: 'Conv2D', outputShape: [null, 8, 8, 4], params: 112 },
      { name: 'StatefulPartitionedCall/model/block_16_project_BN/FusedBatchNormV3', type: 'ConvlensBatchNorm', outputShape: [null, 8, 8, 4], params: 16 },
      { name: 'fc', type: 'Dense', outputShape: [null, 10], params: 1_290 },
    ]);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^layer\s+type\s+output shape\s+parameters$/);
    expect(lines[1]).toMatch(/^input_conv\s+Conv2D\s+\[\?, 8, 8, 4\]\s+112$/);
    expect(lines[2]).toBe('StatefulPartitionedCall/model/block_16_project_BN/FusedBatchNormV3');
    expect(lines[3]).toMatch(/^\s+ConvlensBatchNorm\s+\[\?, 8, 8, 4\]\s+16$/);
    expect(lines[4]).toMatch(/^fc\s+Dense\s+\[\?, 10\]\s+1,290$/);
    // the type column starts at the same place on every row
    const at = (l: string, s: string) => l.indexOf(s);
    expect(new Set([at(lines[0], 'type'), at(lines[1], 'Conv2D'), at(lines[3], 'ConvlensBatchNorm'), at(lines[4], 'Dense')]).size).toBe(1);
  });
});
