/**
 * Benchmark of the embedding core on real data: Fashion-MNIST test images (../shared/fixtures).
 *
 *   npx tsx bench/embedding.bench.ts [sizes...]        (default: 2000 10000)
 *
 * Features: raw pixels / 255 (784-d), reduced by PCA to 50-d before the kNN search and t-SNE
 * (as bhtsne and the method do by default); the "feature space" quality figures use the full
 * 784-d pixels. For each size: Barnes-Hut t-SNE (theta 0.5, perplexity 30, 1000 iterations, PCA
 * init, learning rate max(N / 48, 50)), with wall and CPU time per stage and the 10-NN label
 * agreement in the embedding vs the pixel space. Then tsne-js (exact) vs Barnes-Hut on the first
 * 300 images, through the method's own reduceTo2d, for quality and time.
 */
import { readFileSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { exactKnn, knnLabelAgreement, knnOverlap } from '../pipeline/embedding/knn.ts';
import { pca } from '../pipeline/embedding/pca.ts';
import { reduceTo2d, tsneInit, type ReduceOptions } from '../pipeline/embedding/reduce.ts';
import { bhTsne, jointProbabilities } from '../pipeline/embedding/tsne-barnes-hut.ts';

const DIR = resolve(import.meta.dirname, '../../shared/fixtures/fashion-mnist');
const IMAGES = resolve(DIR, 't10k-images-idx3-ubyte.gz');
const LABELS = resolve(DIR, 't10k-labels-idx1-ubyte.gz');

/** IDX (big-endian header, magic 0x0803 images / 0x0801 labels), gzip. */
function readIdx(path: string): { dims: number[]; data: Uint8Array } {
  const buf = gunzipSync(readFileSync(path));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const rank = buf[3];
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  return { dims, data: buf.subarray(4 + 4 * rank) };
}

interface Timer { wall: number; cpu: number }
function timed<T>(fn: () => T): [T, Timer] {
  const w0 = performance.now();
  const c0 = process.cpuUsage();
  const out = fn();
  const c = process.cpuUsage(c0);
  return [out, { wall: (performance.now() - w0) / 1000, cpu: (c.user + c.system) / 1e6 }];
}
const fmt = (t: Timer) => `${t.wall.toFixed(1)} s wall / ${t.cpu.toFixed(1)} s cpu`;
const f3 = (v: number) => v.toFixed(3);

function main() {
  if (!existsSync(IMAGES) || !existsSync(LABELS)) {
    console.error(`embedding bench: Fashion-MNIST not found at ${DIR}`);
    process.exit(1);
  }
  const images = readIdx(IMAGES);
  const labelsAll = Array.from(readIdx(LABELS).data);
  const [total, rows, cols] = images.dims;
  const d = rows * cols;
  const sizes = process.argv.slice(2).map(Number).filter((v) => v > 0);
  const features = (n: number) => {
    const x = new Float64Array(n * d);
    for (let i = 0; i < n * d; i++) x[i] = images.data[i] / 255;
    return x;
  };
  console.log(`Fashion-MNIST test split: ${total} images ${rows}x${cols}; features: pixels / 255 (${d}-d), PCA to 50-d before t-SNE`);
  console.log(`Node ${process.version}, ${process.platform}/${process.arch}\n`);

  for (const n of sizes.length ? sizes : [2000, 10000]) {
    if (n > total) throw new Error(`at most ${total} points`);
    const x = features(n);
    const labels = labelsAll.slice(0, n);
    console.log(`== Barnes-Hut t-SNE, N = ${n}`);
    const [p, tPca] = timed(() => pca(x, n, d, 50));
    const [knn, tKnn] = timed(() => exactKnn(p.projected, n, 50, 90));
    const [P, tP] = timed(() => jointProbabilities(knn, 30));
    const init = tsneInit(p.projected, n, 50, 'pca', 0);
    const [r, tTsne] = timed(() => bhTsne(P, init, { theta: 0.5, iterations: 1000 }));
    const [quality, tQ] = timed(() => {
      const emb = exactKnn(r.y, n, 2, 10);
      const pix = exactKnn(x, n, d, 10);
      return { emb: knnLabelAgreement(emb, labels), pix: knnLabelAgreement(pix, labels), pca50: knnLabelAgreement(knn, labels, 10), overlap: knnOverlap(pix, emb) };
    });
    const sum = (ts: Timer[]) => ({ wall: ts.reduce((s, t) => s + t.wall, 0), cpu: ts.reduce((s, t) => s + t.cpu, 0) });
    console.log(`  PCA 784 -> 50         ${fmt(tPca)}`);
    console.log(`  kNN (k = 90, 50-d)    ${fmt(tKnn)}`);
    console.log(`  P (perplexity 30)     ${fmt(tP)}`);
    console.log(`  gradient descent      ${fmt(tTsne)}  (${r.iterations} iterations, ${(1000 * tTsne.wall / r.iterations).toFixed(1)} ms each, lr ${r.learningRate.toFixed(1)}, KL ${f3(r.kl)})`);
    console.log(`  t-SNE total           ${fmt(sum([tPca, tKnn, tP, tTsne]))}`);
    console.log(`  10-NN label agreement: embedding ${f3(quality.emb)} | pixels (784-d) ${f3(quality.pix)} | PCA-50 ${f3(quality.pca50)}`);
    console.log(`  10-NN overlap pixels vs embedding ${f3(quality.overlap)}   (quality kNN: ${fmt(tQ)})\n`);
  }

  const m = 300;
  console.log(`== tsne-js (exact) vs Barnes-Hut on the first ${m} images (the method's reduceTo2d; PCA-50, perplexity 30, 1000 iterations)`);
  const x = features(m);
  const labels = labelsAll.slice(0, m);
  const base: ReduceOptions = { algorithm: 'tsne', perplexity: 30, theta: 0.5, iterations: 1000, learningRate: 'auto', init: 'pca', seed: 0, pcaDims: 50, exactMaxPoints: m, neighbors: 15, minDist: 0.1, epochs: 0 };
  const pix = exactKnn(x, m, d, 10);
  const results = [
    { name: 'tsne-js exact', opts: base },
    { name: 'Barnes-Hut 0.5', opts: { ...base, exactMaxPoints: 0 } },
    { name: 'Barnes-Hut 0  ', opts: { ...base, exactMaxPoints: 0, theta: 0 } },
  ].map(({ name, opts }) => {
    const [r, t] = timed(() => reduceTo2d(x, m, d, opts));
    const emb = exactKnn(r.y, m, 2, 10);
    const agree = knnLabelAgreement(emb, labels);
    console.log(`  ${name}  ${fmt(t)}  iterations ${r.iterations}  KL ${f3(Number(r.stats.klDivergence))}  10-NN label agreement ${f3(agree)} (pixels ${f3(knnLabelAgreement(pix, labels))})  overlap ${f3(knnOverlap(pix, emb))}`);
    return { name, t };
  });
  console.log(`  time ratio tsne-js / Barnes-Hut (theta 0.5): ${(results[0].t.wall / results[1].t.wall).toFixed(1)}x wall, ${(results[0].t.cpu / results[1].t.cpu).toFixed(1)}x cpu`);
}

main();
