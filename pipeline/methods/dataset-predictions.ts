import sharp from 'sharp';
import { z } from 'zod';
import { forwardPass } from '../compute/dataset-pass.ts';
import { loadImages, type ImageRef } from '../data.ts';
import type { DatasetExample, DatasetPredictionsFile } from '../data-files.ts';
import { slug } from '../release-writer.ts';
import { defineMethod } from './types.ts';

interface Pick {
  index: number;
  /** Probability of the class the list is for. */
  p: number;
}

/** Keeps the k entries with the largest (or smallest) p; ties go to the lower index. */
class Bounded {
  readonly items: Pick[] = [];
  constructor(private readonly k: number, private readonly largest: boolean) {}
  private better(a: Pick, b: Pick): boolean {
    return a.p === b.p ? a.index < b.index : this.largest ? a.p > b.p : a.p < b.p;
  }
  offer(item: Pick): void {
    if (this.k <= 0) return;
    if (this.items.length < this.k) {
      this.items.push(item);
    } else {
      const worst = this.items.reduce((w, x, i) => (this.better(this.items[w], x) ? i : w), 0);
      if (!this.better(item, this.items[worst])) return;
      this.items[worst] = item;
    }
  }
  sorted(): Pick[] {
    return [...this.items].sort((a, b) => (this.better(a, b) ? -1 : 1));
  }
}

/**
 * Predictions on the whole dataset, streamed once: top-1 accuracy where labels exist (images
 * without a label are counted but not scored; for a binary head top-1 is p >= 0.5 for the
 * positive class; for a multi-label head, whose classes are independent sigmoids, also the share
 * of labelled images whose label has p >= 0.5 (`labelRecall`) and the mean number of classes with
 * p >= 0.5 per image (`meanPredictedLabels`)), per-class accuracy, the confusion matrix as sparse
 * [label, prediction, count] triples, and per class the k images the model is most and least sure
 * about: among images labelled c (or, without labels, predicted c), the highest and lowest p(c).
 * Memory: k entries per class, independent of the dataset size; thumbnails of the chosen images
 * are re-read at the end.
 */
export const datasetPredictions = defineMethod({
  id: 'dataset-predictions',
  title: 'Dataset predictions',
  needs: { dataset: true },
  options: z.strictObject({
    enabled: z.boolean().default(true),
    examples: z.number().int().min(0).max(50).default(5).describe('Most- and least-sure images kept per class'),
    thumbnailSize: z.number().int().min(16).max(256).default(64).describe('Longest side of thumbnails, in pixels'),
  }),
  async run(ctx, opts) {
    const dataset = ctx.dataset;
    if (!dataset) return;
    const n = dataset.refs.length;
    const classes = ctx.classes.length;
    const most = Array.from({ length: classes }, () => new Bounded(opts.examples, true));
    const least = Array.from({ length: classes }, () => new Bounded(opts.examples, false));
    const confusion = new Map<string, number>();
    const perClass = Array.from({ length: classes }, () => ({ count: 0, correct: 0, predicted: 0 }));
    let labelled = 0;
    let correct = 0;
    // multi-label heads: independent sigmoids, a class is predicted where p >= 0.5
    const multiLabel = ctx.model.head.kind === 'multi-label';
    let labelHits = 0;
    let predictedLabels = 0;
    const bar = ctx.logger.progress('dataset-predictions', n);
    for await (const batch of forwardPass(ctx, [])) {
      const values = batch.probs;
      batch.refs.forEach((ref, j) => {
        const row = values.subarray(j * classes, (j + 1) * classes);
        let pred = 0;
        for (let c = 1; c < classes; c++) if (row[c] > row[pred]) pred = c;
        perClass[pred].predicted++;
        if (multiLabel) for (let c = 0; c < classes; c++) if (row[c] >= 0.5) predictedLabels++;
        const index = batch.start + j;
        const cls = ref.label ?? pred;
        most[cls].offer({ index, p: row[cls] });
        least[cls].offer({ index, p: row[cls] });
        if (ref.label !== undefined) {
          labelled++;
          perClass[ref.label].count++;
          if (pred === ref.label) { correct++; perClass[ref.label].correct++; }
          if (row[ref.label] >= 0.5) labelHits++;
          const key = `${ref.label},${pred}`;
          confusion.set(key, (confusion.get(key) ?? 0) + 1);
        }
      });
      bar.tick(batch.refs.length);
    }
    const accuracy = labelled ? correct / labelled : undefined;
    bar.done(accuracy === undefined ? `${n} images, no labels` : `${n} images, top-1 accuracy ${(accuracy * 100).toFixed(2)}% on ${labelled} labelled`);

    const chosen = [...new Set([...most, ...least].flatMap((b) => b.items.map((x) => x.index)))].sort((a, b) => a - b);
    const thumbs = new Map<number, string>();
    const [h, w] = ctx.preprocessing.size;
    const scale = Math.min(1, opts.thumbnailSize / Math.max(h, w));
    const tw = Math.max(1, Math.round(w * scale));
    const th = Math.max(1, Math.round(h * scale));
    for (let s = 0; s < chosen.length; s += 64) {
      const refs = chosen.slice(s, s + 64).map((i) => dataset.refs[i]);
      const loaded = await loadImages(refs, ctx.preprocessing);
      for (const [j, ref] of refs.entries()) {
        const png = await sharp(Buffer.from(loaded.display[j]), { raw: { width: w, height: h, channels: 3 } }).resize(tw, th, { kernel: 'lanczos3' }).png().toBuffer();
        thumbs.set(chosen[s + j], await ctx.out.file(`dataset-predictions/thumbs/${slug(ref.id)}.png`, new Uint8Array(png)));
      }
    }
    const entry = (ref: ImageRef, x: Pick): DatasetExample => ({ source: ref.source, id: ref.id, label: ref.label ?? null, probability: x.p, thumbnail: thumbs.get(x.index)! });
    const value: DatasetPredictionsFile = {
      count: n,
      labelled,
      accuracy: accuracy ?? null,
      perClass: perClass.map((pc, c) => ({
        class: c,
        name: ctx.classes[c],
        count: pc.count,
        predicted: pc.predicted,
        accuracy: pc.count ? pc.correct / pc.count : null,
        mostSure: most[c].sorted().map((x) => entry(dataset.refs[x.index], x)),
        leastSure: least[c].sorted().map((x) => entry(dataset.refs[x.index], x)),
      })),
      confusion: [...confusion.entries()].map(([k, count]) => [...k.split(',').map(Number), count]),
    };
    await ctx.out.data('dataset-predictions', 'predictions', {
      id: 'dataset-predictions',
      method: 'dataset-predictions',
      title: 'Predictions on the dataset',
      stats: {
        count: n,
        labelled,
        ...(accuracy === undefined ? {} : { accuracy }),
        ...(multiLabel && n ? { meanPredictedLabels: predictedLabels / n, ...(labelled ? { labelRecall: labelHits / labelled } : {}) } : {}),
      },
    }, value, [...thumbs.values()]);
  },
});
