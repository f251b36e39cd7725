import { closeSync, openSync, readSync } from 'node:fs';
import { z } from 'zod';
import { PALETTE, UNLABELLED_COLOR } from '../../pipeline/embedding/scatter.ts';
import type { LayerSummary } from '../../pipeline/manifest.ts';
import type { MetricsJson } from '../../pipeline/metrics/types.ts';
import {
  artifactsFor,
  CLASS_VISUALIZATION_METHOD,
  className,
  DATASET_PREDICTIONS_METHOD,
  listedFiles,
  METRICS_ARTIFACT,
  methodInfos,
  readDataArtifact,
  releaseFile,
  releaseLocation,
  type Artifact,
  type Manifest,
  type MethodInfo,
  type ReleaseLocation,
  type Sample,
} from './manifest.ts';
import { layerSlugs, releaseFileSegments } from './paths.ts';
import { shortLayerName } from './format.ts';

/**
 * The report's views of a manifest beyond plain grouping: explanation cards for the sample pages,
 * layer pages, the classes and embedding data, each derived from the manifest and the files it
 * lists only. Data artifacts are read leniently: a JSON file that does not have the expected
 * shape makes its page fall back to the generic table view, never breaks the build.
 */

// ---- explanation cards ------------------------------------------------------------------

/** One explained target (a class, a contrast, a layer) of one method on one sample. */
export interface ExplanationView {
  /** The artifact id without its last part: the same for a heatmap, its overlay and its extras. */
  key: string;
  /** Tab label: class name, contrast and/or layer (a long layer name shortened, see shortLayerName). */
  label: string;
  /** The label with the layer's full name, where it was shortened (the tab's title). */
  fullLabel?: string;
  class?: number;
  layer?: string;
  /** Colour-mapped map and its blend over the image (shown as a stack with adjustable opacity). */
  heatmap?: Artifact;
  overlay?: Artifact;
  /** A picture of its own (a gradient image, a channel grid, ...). */
  image?: Artifact;
}

export interface ExplanationCard {
  /** `<method>:<kind>`, stable across releases (used to match cards on compare pages). */
  key: string;
  method: MethodInfo;
  /** `map` for heatmap/overlay pairs, else the artifact id's last part (`gradient`, `channels`, ...). */
  kind: string;
  title: string;
  views: ExplanationView[];
  /** Index of the view shown first: the top-1 class when it was explained. */
  initial: number;
}

/** The main picture of a view: the overlay where there is one, else the heatmap or the image. */
export function primaryArtifact(v: ExplanationView): Artifact {
  return (v.overlay ?? v.heatmap ?? v.image)!;
}

function splitId(a: Artifact): { key: string; kind: string; part?: 'heatmap' | 'overlay' } {
  const cut = a.id.lastIndexOf('/');
  if (cut <= 0) return { key: a.id, kind: 'map' };
  const last = a.id.slice(cut + 1);
  const key = a.id.slice(0, cut);
  if (last === 'heatmap' || last === 'overlay') return { key, kind: 'map', part: last };
  return { key, kind: last || 'image' };
}

/**
 * Cards for the image artifacts of one sample: one per method and kind, in method order, `map`
 * first; within a card one view per target. Data artifacts are left out (shown as tables).
 */
export function explanationCards(manifest: Manifest, artifacts: readonly Artifact[], sample?: Sample): ExplanationCard[] {
  const methods = new Map(methodInfos(manifest).map((m, i) => [m.id, { m, i }]));
  const cards = new Map<string, ExplanationCard>();
  for (const a of artifacts) {
    if (a.kind !== 'image') continue;
    const { key, kind, part } = splitId(a);
    const cardKey = `${a.method}:${kind}`;
    let card = cards.get(cardKey);
    if (!card) {
      const method = methods.get(a.method)?.m ?? { id: a.method, title: a.method, slug: a.method };
      card = { key: cardKey, method, kind, title: method.title, views: [], initial: 0 };
      cards.set(cardKey, card);
    }
    let view = card.views.find((v) => v.key === key);
    if (!view || (part ? view[part] : view.image)) {
      view = { key, label: '', class: a.class, layer: a.layer };
      card.views.push(view);
    }
    if (part) view[part] = a;
    else view.image = a;
  }
  const list = [...cards.values()];
  const kindsOf = new Map<string, number>();
  for (const c of list) kindsOf.set(c.method.id, (kindsOf.get(c.method.id) ?? 0) + 1);
  for (const c of list) {
    if (c.kind !== 'map' && c.kind !== 'image' && (kindsOf.get(c.method.id) ?? 0) > 1) c.title = `${c.method.title}: ${c.kind}`;
    labelViews(manifest, c);
    const top = sample?.predictions[0]?.class;
    const i = top === undefined ? -1 : c.views.findIndex((v) => v.class === top);
    c.initial = Math.max(0, i);
  }
  return list.sort((a, b) => {
    const ma = methods.get(a.method.id)?.i ?? 1e9;
    const mb = methods.get(b.method.id)?.i ?? 1e9;
    if (ma !== mb) return ma - mb;
    return (a.kind === 'map' ? 0 : 1) - (b.kind === 'map' ? 0 : 1);
  });
}

function labelViews(manifest: Manifest, card: ExplanationCard): void {
  const layers = new Set(card.views.map((v) => v.layer));
  for (const v of card.views) {
    const a = primaryArtifact(v);
    const stats = { ...(v.heatmap?.stats ?? {}), ...(a.stats ?? {}) };
    const parts: string[] = [];
    if (v.class !== undefined) {
      const name = a.className ?? className(manifest, v.class);
      const versus = stats.versusName ?? (typeof stats.versus === 'number' ? className(manifest, stats.versus) : undefined);
      parts.push(versus !== undefined ? `${name} vs ${String(versus)}` : name);
    }
    const full = [...parts];
    if (v.layer !== undefined && (layers.size > 1 || v.class === undefined)) {
      parts.push(shortLayerName(v.layer));
      full.push(v.layer);
    }
    v.label = parts.join(' · ') || a.title;
    if (full.join(' · ') !== v.label && full.length) v.fullLabel = full.join(' · ');
  }
  const seen = new Map<string, number>();
  for (const v of card.views) {
    const n = (seen.get(v.label) ?? 0) + 1;
    seen.set(v.label, n);
    if (n > 1) v.label = `${v.label} (${n})`;
  }
}

// ---- layers -------------------------------------------------------------------------------

export interface SampleActivations {
  sample: Sample;
  channels?: Artifact;
  heatmap?: Artifact;
  overlay?: Artifact;
}

export interface LayerPage {
  name: string;
  slug: string;
  /** From the model summary; undefined for a layer name the manifest's layer list lacks. */
  info?: LayerSummary;
  index?: number;
  filters: Artifact[];
  featureVisualizations: Artifact[];
  topPatches: Artifact[];
  topPatchData: Artifact[];
  activations: SampleActivations[];
  /** Anything else placed on this layer's page. */
  other: Artifact[];
  /** Methods whose sample or model-level artifacts were computed at this layer (with no pictures here). */
  usedBy: MethodInfo[];
}

const layerCache = new WeakMap<Manifest, LayerPage[]>();

/** One page per layer with layer-bound pictures, in model order (unknown layer names last). */
export function layerPages(manifest: Manifest): LayerPage[] {
  const cached = layerCache.get(manifest);
  if (cached) return cached;
  const placed = artifactsFor(manifest);
  const acts = placed.onSamples.filter((a) => a.method === 'activations' && a.layer !== undefined);
  const names = new Set([...placed.onLayers.map((a) => a.layer!), ...acts.map((a) => a.layer!)]);
  const order = new Map(manifest.model.layers.map((l, i) => [l.name, i]));
  const sorted = [...names].sort((a, b) => (order.get(a) ?? 1e9) - (order.get(b) ?? 1e9));
  const slugs = layerSlugs(sorted);
  const infos = methodInfos(manifest);
  const pages = sorted.map((name): LayerPage => {
    const here = placed.onLayers.filter((a) => a.layer === name);
    const used = new Set(manifest.artifacts.filter((a) => a.layer === name && a.method !== 'activations' && !here.includes(a)).map((a) => a.method));
    const activations: SampleActivations[] = [];
    for (const s of manifest.samples) {
      const mine = acts.filter((a) => a.layer === name && a.image === s.id);
      if (mine.length === 0) continue;
      const entry: SampleActivations = { sample: s };
      for (const a of mine) {
        const { part, kind } = splitId(a);
        if (part) entry[part] ??= a;
        else if (kind === 'channels' || !entry.channels) entry.channels ??= a;
      }
      activations.push(entry);
    }
    const filters = here.filter((a) => a.method === 'filters' && a.kind === 'image');
    const featureVisualizations = here.filter((a) => a.method === CLASS_VISUALIZATION_METHOD && a.kind === 'image');
    const topPatches = here.filter((a) => a.method === 'top-patches' && a.kind === 'image');
    const topPatchData = here.filter((a) => a.method === 'top-patches' && a.kind === 'data');
    const shown = new Set([...filters, ...featureVisualizations, ...topPatches, ...topPatchData]);
    return {
      name,
      slug: slugs.get(name)!,
      info: manifest.model.layers.find((l) => l.name === name),
      index: order.get(name),
      filters,
      featureVisualizations,
      topPatches,
      topPatchData,
      activations,
      other: here.filter((a) => !shown.has(a)),
      usedBy: infos.filter((m) => used.has(m.id)),
    };
  });
  layerCache.set(manifest, pages);
  return pages;
}

// ---- dataset predictions and classes ---------------------------------------------------------

const Example = z.object({
  source: z.string(),
  id: z.string().optional(),
  label: z.number().int().nullable().optional(),
  probability: z.number(),
  thumbnail: z.string().min(1),
});
const PerClass = z.object({
  class: z.number().int().nonnegative(),
  name: z.string().optional(),
  count: z.number(),
  predicted: z.number().optional(),
  accuracy: z.number().nullable().optional(),
  mostSure: z.array(Example).default([]),
  leastSure: z.array(Example).default([]),
});
const DatasetPredictionsData = z.object({
  count: z.number(),
  labelled: z.number().optional(),
  accuracy: z.number().nullable().optional(),
  perClass: z.array(PerClass),
});
export type DatasetExample = z.infer<typeof Example>;
export type ClassPredictions = z.infer<typeof PerClass>;

export interface DatasetPredictions {
  artifact: Artifact;
  count: number;
  labelled?: number;
  accuracy?: number;
  perClass: ClassPredictions[];
}

/** The dataset-predictions artifact's JSON, when there is one in the expected shape. */
export function datasetPredictions(manifest: Manifest, loc: ReleaseLocation = releaseLocation()): DatasetPredictions | undefined {
  const artifact = manifest.artifacts.find((a) => a.method === DATASET_PREDICTIONS_METHOD && a.kind === 'data');
  if (!artifact) return undefined;
  let parsed;
  try {
    parsed = DatasetPredictionsData.safeParse(readDataArtifact(artifact, loc));
  } catch {
    return undefined;
  }
  if (!parsed.success) return undefined;
  const files = listedSet(manifest);
  const shown = (e: DatasetExample) => files.has(normalize(e.thumbnail));
  const d = parsed.data;
  return {
    artifact,
    count: d.count,
    labelled: d.labelled,
    accuracy: d.accuracy ?? undefined,
    perClass: d.perClass.map((pc) => ({ ...pc, mostSure: pc.mostSure.filter(shown), leastSure: pc.leastSure.filter(shown) })),
  };
}

/** Top-1 accuracy on the labelled dataset images, from the dataset-predictions artifact's stats. */
export function datasetAccuracy(manifest: Manifest): { accuracy: number; labelled?: number; count?: number; labelRecall?: number; meanPredictedLabels?: number } | undefined {
  const stats = manifest.artifacts.find((a) => a.method === DATASET_PREDICTIONS_METHOD)?.stats;
  const accuracy = stats?.accuracy;
  if (typeof accuracy !== 'number' || !Number.isFinite(accuracy)) return undefined;
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  return {
    accuracy,
    labelled: num(stats?.labelled),
    count: num(stats?.count),
    labelRecall: num(stats?.labelRecall),
    meanPredictedLabels: num(stats?.meanPredictedLabels),
  };
}

export interface ClassEntry {
  index: number;
  name: string;
  predictions?: ClassPredictions;
  /** Class visualizations (images optimised for the class). */
  visualizations: Artifact[];
  /** Other class-bound model-level artifacts placed on the classes pages. */
  other: Artifact[];
  /** Whether the class has a page of its own (something beyond its row in the index). */
  hasPage: boolean;
}

export interface ClassesView {
  predictions?: DatasetPredictions;
  /** The dataset-predictions artifact when its JSON could not be read in the expected shape. */
  unreadable?: Artifact;
  classes: ClassEntry[];
  /** Model-level class-page artifacts without a class (shown on the index). */
  unassigned: Artifact[];
}

const classesCache = new WeakMap<Manifest, ClassesView | null>();

/** The classes pages' content, or undefined when there is nothing to show. */
export function classesView(manifest: Manifest, loc: ReleaseLocation = releaseLocation()): ClassesView | undefined {
  if (classesCache.has(manifest)) return classesCache.get(manifest) ?? undefined;
  const placed = artifactsFor(manifest).onClasses;
  let result: ClassesView | undefined;
  if (placed.length > 0) {
    const predictions = datasetPredictions(manifest, loc);
    const byClass = new Map((predictions?.perClass ?? []).map((pc) => [pc.class, pc]));
    const images = placed.filter((a) => a.kind === 'image');
    const classes = manifest.model.classes.map((name, index): ClassEntry => {
      const visualizations = images.filter((a) => a.class === index && a.method === CLASS_VISUALIZATION_METHOD);
      const other = images.filter((a) => a.class === index && a.method !== CLASS_VISUALIZATION_METHOD);
      const pc = byClass.get(index);
      const hasPage = visualizations.length + other.length > 0 || (pc !== undefined && pc.mostSure.length + pc.leastSure.length > 0);
      return { index, name, predictions: pc, visualizations, other, hasPage };
    });
    const dataArtifact = placed.find((a) => a.method === DATASET_PREDICTIONS_METHOD && a.kind === 'data');
    result = {
      predictions,
      unreadable: dataArtifact && !predictions ? dataArtifact : undefined,
      classes,
      unassigned: placed.filter((a) => (a.kind === 'image' && (a.class === undefined || a.class >= manifest.model.classes.length)) || (a.kind === 'data' && a !== dataArtifact)),
    };
  }
  classesCache.set(manifest, result ?? null);
  return result;
}

/** Reached / probability of a class visualization, from its stats. */
export function visualizationOutcome(a: Artifact): { probability?: number; reached?: boolean } {
  const p = a.stats?.probability;
  const r = a.stats?.reached;
  return { probability: typeof p === 'number' ? p : undefined, reached: typeof r === 'boolean' ? r : undefined };
}

// ---- embedding ------------------------------------------------------------------------------

const Point = z.object({
  id: z.string().optional(),
  x: z.number(),
  y: z.number(),
  label: z.number().int().nullable().optional(),
  labelName: z.string().nullable().optional(),
  prediction: z.number().int().nonnegative(),
  predictionName: z.string().optional(),
  confidence: z.number().optional(),
  thumb: z.string().optional(),
  thumbnail: z.string().optional(),
  source: z.string().optional(),
});
const EmbeddingData = z.object({
  algorithm: z.string().optional(),
  layer: z.string().optional(),
  legend: z.array(z.object({ label: z.number().int().nullable().optional(), name: z.string(), color: z.string() })).optional(),
  points: z.array(Point),
});

export interface EmbeddingView {
  data: Artifact;
  /** The static scatter PNG of the same embedding, if any. */
  scatter?: Artifact;
  points: z.infer<typeof Point>[];
  legend: { label?: number | null; name: string; color: string }[];
}

const isColor = (c: string) => /^#[0-9a-f]{6}$/i.test(c);

export interface EmbeddingPage {
  views: EmbeddingView[];
  /** Embedding pictures that are not the scatter of a readable data artifact. */
  images: Artifact[];
  /** Data artifacts that could not be read as points. */
  unreadable: Artifact[];
}

const embeddingCache = new WeakMap<Manifest, EmbeddingPage | null>();

/** The embedding page's content, or undefined when the release has no embedding artifact. */
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
  const unreadable: Artifact[] = [];
  const used = new Set<Artifact>();
  for (const a of placed.filter((x) => x.kind === 'data')) {
    let parsed;
    try {
      parsed = EmbeddingData.safeParse(readDataArtifact(a, loc));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) {
      unreadable.push(a);
      continue;
    }
    const prefix = a.id.includes('/') ? a.id.slice(0, a.id.lastIndexOf('/') + 1) : '';
    const scatter = placed.find((x) => x.kind === 'image' && !used.has(x) && x.layer === a.layer && x.id.startsWith(prefix))
      ?? placed.find((x) => x.kind === 'image' && !used.has(x));
    if (scatter) used.add(scatter);
    views.push({
      data: a,
      scatter,
      points: parsed.data.points,
      legend: (parsed.data.legend ?? []).map((l) => ({ label: l.label, name: l.name, color: isColor(l.color) ? l.color : UNLABELLED_COLOR })),
    });
  }
  return { views, images: placed.filter((x) => x.kind === 'image' && !used.has(x)), unreadable };
}

/**
 * The compact column form the scatter script reads (from a data attribute, so every string is
 * attribute-escaped by Astro). Thumbnail links are relative to the page (`toFile` maps a release
 * path to a page-relative URL) and stored as a shared prefix and suffix plus the varying middle.
 */
export function scatterData(manifest: Manifest, view: EmbeddingView, toFile: (releasePath: string) => string) {
  const classes = manifest.model.classes;
  const files = listedSet(manifest);
  const labels: string[] = [];
  const labelClass: number[] = [];
  const labelIndex = new Map<string, number>();
  const labelOf = (p: z.infer<typeof Point>): number => {
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
  const urls = view.points.map((p) => {
    const t = p.thumb ?? p.thumbnail;
    return t && files.has(normalize(t)) ? toFile(t) : '';
  });
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

// ---- metrics ------------------------------------------------------------------------------

/** The release's metrics.json artifact (see `hasMetrics`), if any. */
export function metricsArtifact(manifest: Manifest): Artifact | undefined {
  return manifest.artifacts.find((a) => a.id === METRICS_ARTIFACT && a.kind === 'data');
}

const metricsCache = new WeakMap<Manifest, MetricsJson | null>();

/**
 * The trust metrics (metrics/metrics.json from the pipeline's metrics stage) for the metrics page
 * and the sample pages, read once per manifest; undefined when the release has none.
 */
export function metricsData(manifest: Manifest, loc: ReleaseLocation = releaseLocation()): MetricsJson | undefined {
  if (metricsCache.has(manifest)) return metricsCache.get(manifest) ?? undefined;
  const artifact = metricsArtifact(manifest);
  const data = artifact ? (readDataArtifact(artifact, loc) as MetricsJson) : undefined;
  metricsCache.set(manifest, data ?? null);
  return data;
}

// ---- files ----------------------------------------------------------------------------------

function normalize(p: string): string {
  try {
    return releaseFileSegments(p).join('/');
  } catch {
    return '';
  }
}

const listedCache = new WeakMap<Manifest, Set<string>>();
function listedSet(manifest: Manifest): Set<string> {
  let s = listedCache.get(manifest);
  if (!s) {
    s = new Set(listedFiles(manifest));
    listedCache.set(manifest, s);
  }
  return s;
}

/**
 * Pixel size of a PNG or WebP file from its header (the site needs width/height on every img
 * and data artifacts do not record the size of their thumbnails); undefined for anything else.
 */
export function imageSize(file: string): { width: number; height: number } | undefined {
  const buf = Buffer.alloc(32);
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const n = readSync(fd, buf, 0, 32, 0);
    if (n < 24) return undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  if (buf.readUInt32BE(0) === 0x89504e47 && buf.toString('latin1', 12, 16) === 'IHDR') {
    return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
  }
  if (buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WEBP') {
    const chunk = buf.toString('latin1', 12, 16);
    if (chunk === 'VP8X') return { width: 1 + buf.readUIntLE(24, 3), height: 1 + buf.readUIntLE(27, 3) };
    if (chunk === 'VP8L') {
      const bits = buf.readUInt32LE(21);
      return { width: 1 + (bits & 0x3fff), height: 1 + ((bits >> 14) & 0x3fff) };
    }
    if (chunk === 'VP8 ') return { width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff };
  }
  return undefined;
}

/** Size of a release file (see imageSize). */
export function releaseImageSize(releasePath: string, loc: ReleaseLocation = releaseLocation()): { width: number; height: number } | undefined {
  try {
    return imageSize(releaseFile(releasePath, loc));
  } catch {
    return undefined;
  }
}

/** Box-fitting display size: the picture scaled to fit `side`×`side` keeping its aspect ratio. */
export function fitSize(w: number | undefined, h: number | undefined, side: number): { width: number; height: number; pixelated: boolean } {
  if (!w || !h) return { width: side, height: side, pixelated: false };
  const f = side / Math.max(w, h);
  return { width: Math.max(1, Math.round(w * f)), height: Math.max(1, Math.round(h * f)), pixelated: f > 1 };
}
