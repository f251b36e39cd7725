/**
 * What the per-sample maps cost, and what the worker threads give: Darknet Tiny on the photos of
 * ../shared/fixtures, then every model of ../shared/fixtures/zoo on its two reference images.
 *
 *   npx tsx bench/maps.bench.ts [count] [--zoo-only] [--darknet-only]
 *   npm run bench -- maps [count]
 *
 * count: Darknet photos (1-12, default 12). For each model it prints, measured in this one run:
 *  - forward and forward + input-gradient time per image (batch 4, one thread, the median of 5
 *    after a warm-up) and their ratio;
 *  - seconds per image of every per-sample method at its default options, from a whole report
 *    (no site, no metrics, no dataset) with compute.workers 0 (the main thread computes), 1 and
 *    "auto" (one worker per core), and the speed-ups of "auto" over 0 and over 1.
 * Backend wasm. Runs take minutes; the machine's load changes absolute times, so compare ratios
 * within one run.
 */
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { initBackend } from '../pipeline/backend.ts';
import { WorkerPool } from '../pipeline/compute/worker-pool.ts';
import { silentLogger } from '../pipeline/logger.ts';
import type { Manifest } from '../pipeline/manifest.ts';
import { METHODS } from '../pipeline/methods/registry.ts';
import type { MethodDef } from '../pipeline/methods/types.ts';
import { classScore } from '../pipeline/model/adapter.ts';
import { loadModel } from '../pipeline/model/load.ts';
import { runReport } from '../pipeline/run.ts';

const FIXTURES = resolve(import.meta.dirname, '../../shared/fixtures');
const DARKNET = resolve(FIXTURES, 'darknet-tiny');
const PHOTOS = resolve(FIXTURES, 'photos');
const ZOO = resolve(FIXTURES, 'zoo');
const PER_SAMPLE = (METHODS as readonly MethodDef[]).filter((m) => m.perSample).map((m) => m.id);
const OTHERS = (METHODS as readonly MethodDef[]).filter((m) => !m.perSample).map((m) => m.id);

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

/** Forward and forward + input gradient, ms per image, batch 4 (median of 5 after a warm-up). */
async function passRatio(modelPath: string): Promise<{ forward: number; backward: number }> {
  const { adapter: m } = await loadModel(modelPath);
  const n = 4;
  const x = tf.randomUniform([n, ...m.inputShape], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.tidy(() => tf.oneHot(tf.fill([n], 0, 'int32') as tf.Tensor1D, m.numClasses).toFloat() as tf.Tensor2D);
  const time = (f: () => void) => {
    f();
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      f();
      runs.push((performance.now() - t0) / n);
    }
    return median(runs);
  };
  const forward = time(() => tf.tidy(() => { m.forward(x).logits.dataSync(); }));
  const backward = time(() => {
    const g = m.gradient(x, classScore(w), 'input');
    g.grad.dataSync();
    tf.dispose([g.grad, g.value, g.logits]);
  });
  tf.dispose([x, w]);
  m.dispose();
  return { forward, backward };
}

/** Peak resident memory of the process (worker threads included) while `fn` runs, in MB. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ value: T; mb: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
  try {
    const value = await fn();
    return { value, mb: Math.round(Math.max(peak, process.memoryUsage().rss) / 2 ** 20) };
  } finally {
    clearInterval(timer);
  }
}

/** Seconds per image of each per-sample method, from one report with `workers`, and the peak RSS. */
async function methodTimes(dir: string, modelPath: string, images: string[], scale: number, workers: number | 'auto'): Promise<{ times: Map<string, number>; mb: number }> {
  const viz = join(dir, `viz-${workers}.yaml`);
  await writeFile(viz, stringify({
    release: `bench-${workers}`,
    model: { path: modelPath },
    input: { scale },
    data: { samples: { files: images, limit: images.length } },
    compute: { backend: 'wasm', workers },
    output: { dir: join(dir, 'output') },
    metrics: { enabled: false },
    methods: Object.fromEntries(OTHERS.map((id) => [id, { enabled: false }])),
  }));
  const { value: { releaseDir }, mb } = await peakRss(() => runReport({ configFile: viz, site: false, logger: silentLogger }));
  const manifest = JSON.parse(await readFile(join(releaseDir, 'manifest.json'), 'utf8')) as Manifest;
  return { times: new Map(manifest.timings.filter((t) => PER_SAMPLE.includes(t.stage)).map((t) => [t.stage, t.ms / 1000 / images.length])), mb };
}

async function benchModel(name: string, modelPath: string, images: string[], scale: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'convlens-maps-bench-'));
  try {
    const ratio = await passRatio(modelPath);
    const auto = WorkerPool.defaultSize();
    const runs = [await methodTimes(dir, modelPath, images, scale, 0), await methodTimes(dir, modelPath, images, scale, 1), await methodTimes(dir, modelPath, images, scale, 'auto')];
    const [zero, one, many] = runs.map((r) => r.times);
    console.log(`\n### ${name} (${images.length} image${images.length === 1 ? '' : 's'})\n`);
    console.log(`forward ${ratio.forward.toFixed(1)} ms/image, forward + input gradient ${ratio.backward.toFixed(1)} ms/image: ${(ratio.backward / ratio.forward).toFixed(1)}x (batch 4, one thread)\n`);
    console.log(`| method | s/image, workers 0 | workers 1 | workers auto (${auto}) | auto / 0 | auto / 1 |`);
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    const sums = [0, 0, 0];
    const row = (id: string, [a, b, c]: number[]) => `| ${id} | ${a.toFixed(3)} | ${b.toFixed(3)} | ${c.toFixed(3)} | ${(a / c).toFixed(2)}x | ${(b / c).toFixed(2)}x |`;
    for (const id of PER_SAMPLE) {
      const t = [zero.get(id), one.get(id), many.get(id)];
      if (t.some((v) => v === undefined)) {
        console.log(`| ${id} | skipped | | | | |`);
        continue;
      }
      t.forEach((v, i) => { sums[i] += v!; });
      console.log(row(id, t as number[]));
    }
    console.log(row('all', sums));
    console.log(`\npeak RSS of the process (worker threads included): ${runs.map((r) => `${r.mb} MB`).join(', ')} for workers 0, 1, auto (the process holds what earlier runs left)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The reference images of a zoo folder as PNG files (values in [0, 1] -> 0..255). */
async function zooImages(dir: string, out: string): Promise<string[]> {
  const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { x: number[][][][] };
  return Promise.all(ref.x.map(async (img, i) => {
    const [h, w, c] = [img.length, img[0].length, img[0][0].length];
    const px = Buffer.from(img.flat(2).map((v) => Math.round(Math.min(1, Math.max(0, v)) * 255)));
    const path = join(out, `image-${i}.png`);
    await sharp(px, { raw: { width: w, height: h, channels: c as 3 } }).png().toFile(path);
    return path;
  }));
}

async function main() {
  const args = process.argv.slice(2);
  const count = Number(args.find((a) => /^\d+$/.test(a)) ?? 12);
  await initBackend('wasm', silentLogger);
  const load = loadavg().map((v) => v.toFixed(2)).join(' ');
  console.log(`Node ${process.version}, ${availableParallelism()} cores, load average ${load}; backend wasm`);
  if (!args.includes('--zoo-only')) {
    if (!existsSync(join(DARKNET, 'model.json'))) throw new Error(`no Darknet Tiny under ${FIXTURES}`);
    const photos = readdirSync(PHOTOS).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().slice(0, count).map((f) => join(PHOTOS, f));
    await benchModel('Darknet Tiny, 224x224', DARKNET, photos, 1 / 255);
  }
  if (!args.includes('--darknet-only') && existsSync(ZOO)) {
    const scratch = await mkdtemp(join(tmpdir(), 'convlens-zoo-images-'));
    try {
      for (const name of readdirSync(ZOO).filter((d) => existsSync(join(ZOO, d, 'model.json'))).sort()) {
        const out = join(scratch, name);
        await (await import('node:fs/promises')).mkdir(out);
        try {
          await loadModel(join(ZOO, name)).then((m) => m.adapter.dispose());
        } catch (err) {
          console.log(`\n### ${name}\n\nnot loadable: ${(err as Error).message.split('\n')[0]}`);
          continue;
        }
        await benchModel(name, join(ZOO, name), await zooImages(join(ZOO, name), out), 1 / 255);
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  console.log(`\nload average at the end ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
}

await main();
