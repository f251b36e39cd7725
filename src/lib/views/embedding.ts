import { EmbeddingFile, type EmbeddingPoint } from '../../../pipeline/data-files.ts';
import { PALETTE, UNLABELLED_COLOR } from '../../../pipeline/embedding/scatter.ts';
import { isListed, readDataFile } from '../files.ts';
import { artifactsFor, releaseLocation, type Artifact, type Manifest, type ReleaseLocation } from '../manifest.ts';

/**
 * The embedding page: each embedding data file with its static scatter, and the column form the
 * interactive scatter reads.
 */

export interface EmbeddingView {
  data: Artifact;
  /** The static scatter PNG of the same embedding, if any. */
  scatter?: Artifact;
  points: EmbeddingPoint[];
  legend: { label?: number | null; name: string; color: string }[];
}

const isColor = (c: string) => /^#[0-9a-f]{6}$/i.test(c);

export interface EmbeddingPage {
  views: EmbeddingView[];
  /** Embedding pictures that are not the scatter of a data artifact. */
  images: Artifact[];
}

const embeddingCache = new WeakMap<Manifest, EmbeddingPage | null>();

/**
 * The embedding page's content, or undefined when the release has no embedding artifact. A data
 * file of another shape fails the build (see readDataFile).
 */
export function embeddingPage(manifest: Manifest, loc: ReleaseLocation = releaseLocation()): EmbeddingPage | undefined {
  if (embeddingCache.has(manifest)) return embeddingCache.get(manifest) ?? undefined;
  const page = readEmbeddingPage(manifest, loc);
  embeddingCache.set(manifest, page ?? null);
  return page;
}

function readEmbeddingPage(manifest: Manifest, loc: ReleaseLocation): EmbeddingPage | undefined {
  const placed = artifactsFor(manifest).onEmbedding;
  if (placed.length === 0) return undefined;
  const views: EmbeddingView[] = [];
  const used = new Set<Artifact>();
  for (const a of placed.filter((x) => x.kind === 'data')) {
    const data = readDataFile(a, EmbeddingFile, loc);
    const prefix = a.id.includes('/') ? a.id.slice(0, a.id.lastIndexOf('/') + 1) : '';
    const scatter = placed.find((x) => x.kind === 'image' && !used.has(x) && x.layer === a.layer && x.id.startsWith(prefix))
      ?? placed.find((x) => x.kind === 'image' && !used.has(x));
    if (scatter) used.add(scatter);
    views.push({
      data: a,
      scatter,
      points: data.points,
      legend: (data.legend ?? []).map((l) => ({ label: l.label, name: l.name, color: isColor(l.color) ? l.color : UNLABELLED_COLOR })),
    });
  }
  return { views, images: placed.filter((x) => x.kind === 'image' && !used.has(x)) };
}

/**
 * The compact column form the scatter script reads (from a data attribute, so every string is
 * attribute-escaped by Astro). Thumbnail links are relative to the page (`toFile` maps a release
 * path to a page-relative URL) and stored as a shared prefix and suffix plus the varying middle.
 */
export function scatterData(manifest: Manifest, view: EmbeddingView, toFile: (releasePath: string) => string) {
  const classes = manifest.model.classes;
  const labels: string[] = [];
  const labelClass: number[] = [];
  const labelIndex = new Map<string, number>();
  const labelOf = (p: EmbeddingPoint): number => {
    if (p.label === null || p.label === undefined) {
      if (!p.labelName) return -1;
    }
    const cls = typeof p.label === 'number' ? p.label : -1;
    const name = cls >= 0 ? (classes[cls] ?? p.labelName ?? `class ${cls}`) : p.labelName!;
    const key = `${cls}:${name}`;
    let i = labelIndex.get(key);
    if (i === undefined) {
      i = labels.length;
      labels.push(name);
      labelClass.push(cls);
      labelIndex.set(key, i);
    }
    return i;
  };
  const legendColor = (cls: number, name: string) =>
    view.legend.find((l) => (cls >= 0 ? l.label === cls : l.name === name && (l.label === null || l.label === undefined)))?.color;
  const round = (v: number, digits: number) => Number(v.toPrecision(digits));
  const urls = view.points.map((p) => (p.thumb && isListed(manifest, p.thumb) ? toFile(p.thumb) : ''));
  const present = urls.filter(Boolean);
  let prefix = present[0] ?? '';
  let suffix = present[0] ?? '';
  for (const u of present) {
    while (!u.startsWith(prefix)) prefix = prefix.slice(0, -1);
    while (!u.endsWith(suffix)) suffix = suffix.slice(1);
  }
  if (present.some((u) => u.length < prefix.length + suffix.length)) suffix = '';
  const label = view.points.map(labelOf);
  const maxPred = view.points.reduce((m, p) => Math.max(m, p.prediction), classes.length - 1);
  const predictionColors = Array.from({ length: maxPred + 1 }, (_, c) => legendColor(c, classes[c] ?? '') ?? PALETTE[c % PALETTE.length]);
  const labelColors = labels.map((name, i) => legendColor(labelClass[i], name) ?? (labelClass[i] >= 0 ? predictionColors[labelClass[i]] : PALETTE[i % PALETTE.length]));
  return {
    n: view.points.length,
    x: view.points.map((p) => round(p.x, 6)),
    y: view.points.map((p) => round(p.y, 6)),
    label,
    labels,
    labelClass,
    prediction: view.points.map((p) => p.prediction),
    classes: Array.from({ length: maxPred + 1 }, (_, c) => classes[c] ?? `class ${c}`),
    confidence: view.points.map((p) => (p.confidence === undefined ? null : round(p.confidence, 3))),
    source: view.points.map((p) => p.source ?? p.id ?? ''),
    thumb: { prefix, suffix, mid: urls.map((u) => (u ? u.slice(prefix.length, u.length - suffix.length) : null)) },
    colors: { label: labelColors, prediction: predictionColors, none: UNLABELLED_COLOR },
  };
}

/** Points whose label is a class and differs from the prediction. */
export function misclassified(view: EmbeddingView): number[] {
  const out: number[] = [];
  view.points.forEach((p, i) => {
    if (typeof p.label === 'number' && p.label !== p.prediction) out.push(i);
  });
  return out;
}
