import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveLayersModel } from '../../pipeline/model/io.ts';

/**
 * A whole small project in a temp folder: a seeded 16x16 RGB CNN with a GAP + softmax head saved
 * as a LayersModel, a labels file, folder-per-class sample images, and a viz.yaml.
 */
export async function makeTinyProject(opts: { extraYaml?: string; classNames?: string[] } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'convlens-tiny-'));
  const classes = opts.classNames ?? ['circle', 'square', 'stripes'];
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [16, 16, 3], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: init(1) }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv2', kernelInitializer: init(2) }),
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      tf.layers.dense({ units: classes.length, activation: 'softmax', name: 'predictions', kernelInitializer: init(3) }),
    ],
  });
  await saveLayersModel(model, join(dir, 'model'));
  const params = model.countParams();
  model.dispose();
  await writeFile(join(dir, 'model', 'labels.txt'), `${classes.join('\n')}\n`);
  for (const [i, cls] of classes.slice(0, 2).entries()) {
    await mkdir(join(dir, 'images', cls), { recursive: true });
    const pixels = Buffer.alloc(16 * 16 * 3);
    for (let p = 0; p < 16 * 16; p++) {
      const x = p % 16;
      const y = Math.floor(p / 16);
      const on = i === 0 ? (x - 8) ** 2 + (y - 8) ** 2 < 25 : x > 3 && x < 12 && y > 3 && y < 12;
      pixels.fill(on ? 230 : 20, p * 3, p * 3 + 3);
    }
    await sharp(pixels, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(join(dir, 'images', cls, `${cls}-1.png`));
  }
  const config = join(dir, 'viz.yaml');
  await writeFile(config, [
    'release: tiny',
    'model:',
    '  path: model',
    '  labels: model/labels.txt',
    '  name: Tiny test CNN',
    'data:',
    '  samples:',
    '    folder: images',
    '  dataset:',
    '    folder: images',
    'compute:',
    '  backend: wasm',
    'methods:',
    '  filters:',
    '    scale: 4',
    opts.extraYaml ?? '',
  ].join('\n'));
  return { dir, config, classes, params, outputDir: join(dir, 'output') };
}
