/**
 * Whole reports on PyTorch models exported to ONNX (../shared/fixtures/onnx: SqueezeNet 1.1 and
 * MobileNetV3-Small from torchvision, random weights), configured as a PyTorch user would:
 * `model.path` names the .onnx file, the input block gives torchvision's ImageNet mean and std,
 * real photos as samples and dataset. Every method of the registry runs and writes finite maps
 * (CAM where the head allows it: SqueezeNet's 1x1 convolution + GAP; torchvision's MobileNetV3
 * ends in Linear -> Hardswish -> Linear after the pooling, which CAM cannot read, so it is skipped
 * before any work with that reason), and the trust metrics run on the maps.
 */
import sharp from 'sharp';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { Manifest } from '../../pipeline/manifest.ts';
import { METHOD_IDS } from '../../pipeline/methods/registry.ts';
import { decodeNpy } from '../../pipeline/npy.ts';
import { runReport } from '../../pipeline/run.ts';
import { CHEAP_RUN_YAML } from '../helpers/cheap-config.ts';

const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures');
const ONNX = join(FIXTURES, 'onnx');
const haveOnnx = existsSync(join(ONNX, 'squeezenet1_1', 'model.onnx')) && existsSync(join(FIXTURES, 'photos', 'chelsea.png'));
if (!haveOnnx) console.warn(`skipping the ONNX report tests: ${ONNX} or the photos are absent`);

const PHOTOS = ['chelsea.png', 'coffee.png', 'dog.jpg', 'eagle.jpg', 'horse.png', 'kite.jpg'];

/** A project folder: viz.yaml naming the fixture's .onnx, two samples, a dataset of four photos in two class folders. */
async function project(arch: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `convlens-onnx-${arch}-`));
  for (const [i, photo] of PHOTOS.entries()) {
    const folder = i < 2 ? join(dir, 'samples') : join(dir, 'dataset', `class ${i % 2}`);
    await mkdir(folder, { recursive: true });
    // a 128 px copy keeps decoding cheap; the model input is 96 px
    await sharp(join(FIXTURES, 'photos', photo)).removeAlpha().resize(128, 128, { fit: 'cover' }).png().toFile(join(folder, photo.replace(/\.\w+$/, '.png')));
  }
  const config = join(dir, 'viz.yaml');
  await writeFile(config, [
    'release: r1',
    'model:',
    `  path: ${join(ONNX, arch, 'model.onnx')}`,
    `  labels: ${join(ONNX, arch, 'labels.txt')}`,
    'input:',
    '  scale: 0.00392156862745098',
    '  mean: [0.485, 0.456, 0.406]',
    '  std: [0.229, 0.224, 0.225]',
    'data:',
    '  samples: { folder: samples }',
    '  dataset: { folder: dataset }',
    ...CHEAP_RUN_YAML,
    '  class-visualization: { classes: [0], steps: 2 }',
    '  occlusion: { size: 32, stride: 32 }',
    '  activations: { maxLayers: 2, maxChannels: 4 }',
    '  embedding: { algorithm: pca }',
    'metrics:',
    '  randomization: { maxPasses: 40 }',
    '',
  ].join('\n'));
  return config;
}

describe.skipIf(!haveOnnx)('reports on ONNX exports of PyTorch models', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  for (const { arch, cam } of [
    { arch: 'mobilenet_v3_small', cam: undefined },
    { arch: 'squeezenet1_1', cam: 'class-maps+gap' },
  ]) {
    it(`${arch}: every method of the registry runs and writes finite maps; CAM ${cam ? `finds the ${cam} head` : 'is skipped with the reason'}`, async () => {
      const config = await project(arch);
      const logger = new MemoryLogger();
      const { manifest, releaseDir } = await runReport({ configFile: config, logger, site: false });
      expect(Manifest.parse(manifest)).toBeDefined();
      expect(manifest.model.format).toBe('onnx');
      expect(manifest.model.source).toBe(`${arch}/model.onnx`);
      expect(manifest.model.inputShape).toEqual([96, 96, 3]);
      expect(manifest.model.head).toMatchObject({ kind: 'logits', units: 10 });
      const expected = cam ? METHOD_IDS : METHOD_IDS.filter((id) => id !== 'cam');
      expect(manifest.skipped?.map((x) => x.id) ?? []).toEqual(cam ? [] : ['cam']);
      if (!cam) expect(manifest.skipped![0].reason).toMatch(/is not fed by global average pooling/);
      expect(manifest.methods.map((m) => m.id)).toEqual([...expected, 'metrics']);
      for (const id of expected) {
        expect(manifest.artifacts.some((a) => a.method === id), id).toBe(true);
      }
      if (cam) {
        const cams = manifest.artifacts.filter((a) => a.method === 'cam');
        expect(new Set(cams.map((a) => a.image))).toEqual(new Set(manifest.samples.map((x) => x.id)));
        const withHead = cams.filter((a) => a.stats?.head !== undefined);
        expect(new Set(withHead.map((a) => a.image))).toEqual(new Set(manifest.samples.map((x) => x.id)));
        for (const a of withHead) expect(a.stats!.head).toBe(cam);
      }
      const raws = manifest.artifacts.filter((a) => a.raw);
      expect(raws.length).toBeGreaterThan(20);
      for (const a of raws) {
        const { data } = decodeNpy(await readFile(join(releaseDir, a.raw!.path)));
        expect(Array.from(data).every(Number.isFinite), a.raw!.path).toBe(true);
      }
      expect(manifest.artifacts.some((a) => a.method === 'metrics')).toBe(true);
    }, 300_000);
  }
});
