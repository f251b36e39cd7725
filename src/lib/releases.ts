import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifest } from '../../pipeline/manifest.ts';
import { artifactsFor, loadManifest, releaseLocation, type Manifest, type ReleaseLocation, type Sample } from './manifest.ts';
import { releaseFileSegments, releaseSlugs, routes } from './paths.ts';
import { datasetAccuracy } from './views/classes.ts';
import { explanationCards, primaryArtifact, type ExplanationCard, type ExplanationView } from './views/explanations.ts';

/**
 * The releases beside the current one: every `<output>/releases/<name>/manifest.json` that
 * parses, newest first, and for each other release a comparison with the current one (samples
 * matched by id, methods by id). Only the files a compare page shows are copied into the site,
 * under `releases/<slug>/artifacts/`; `compareCopies` lists them for the artifacts integration.
 */

export interface ReleaseEntry {
  name: string;
  slug: string;
  dir: string;
  current: boolean;
  manifest?: Manifest;
  /** Why the manifest could not be used. */
  problem?: string;
  accuracy?: { accuracy: number; labelled?: number };
}

let cache: { key: string; entries: ReleaseEntry[] } | undefined;

/**
 * Folder names that are work in progress of the pipeline (staging and replaced releases): all
 * hidden, since release names start with a letter or digit; so a release the user named
 * `x.old-1234` is listed like any other.
 */
const TRANSIENT = /^\./;

export function listReleases(loc: ReleaseLocation = releaseLocation()): ReleaseEntry[] {
  const dir = join(loc.outputDir, 'releases');
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !TRANSIENT.test(e.name))
      .map((e) => e.name)
      .filter((n) => n === loc.release || existsSync(join(dir, n, 'manifest.json')))
      .sort();
  } catch {
    names = [loc.release];
  }
  if (!names.includes(loc.release)) names.push(loc.release);
  const stamps = names.map((n) => {
    try {
      const st = statSync(join(dir, n, 'manifest.json'));
      return `${n}:${st.mtimeMs}:${st.size}`;
    } catch {
      return `${n}:-`;
    }
  });
  const key = `${dir}|${loc.release}|${stamps.join('|')}`;
  if (cache?.key === key) return cache.entries;
  const slugs = releaseSlugs(names);
  const entries = names.map((name): ReleaseEntry => {
    const current = name === loc.release;
    const base = { name, slug: slugs.get(name)!, dir: join(dir, name), current };
    let manifest: Manifest;
    try {
      manifest = current ? loadManifest(loc) : parseManifest(JSON.parse(readFileSync(join(dir, name, 'manifest.json'), 'utf8')), join(dir, name, 'manifest.json'));
    } catch (err) {
      return { ...base, problem: (err as Error).message.split('\n')[0] };
    }
    return { ...base, manifest, accuracy: datasetAccuracy(manifest) };
  });
  entries.sort((a, b) => {
    if (!a.manifest || !b.manifest) return a.manifest ? -1 : b.manifest ? 1 : a.name.localeCompare(b.name);
    return b.manifest.createdAt.localeCompare(a.manifest.createdAt) || a.name.localeCompare(b.name);
  });
  cache = { key, entries };
  return entries;
}

/** The other releases that can be compared with the current one. */
export function otherReleases(loc: ReleaseLocation = releaseLocation()): (ReleaseEntry & { manifest: Manifest })[] {
  return listReleases(loc).filter((r): r is ReleaseEntry & { manifest: Manifest } => !r.current && r.manifest !== undefined);
}

// ---- comparison ---------------------------------------------------------------------------

export interface ShownImage {
  /** Release-relative path (in its own release). */
  path: string;
  /** Where the page links it (site path). */
  site: string;
  alt: string;
  caption: string;
  width?: number;
  height?: number;
}

export interface PredictionRow {
  class: number;
  name: string;
  current?: number;
  other?: number;
  delta?: number;
}

export interface ComparedMethod {
  key: string;
  title: string;
  current?: ShownImage;
  other?: ShownImage;
}

export interface ComparedSample {
  id: string;
  current: Sample;
  other: Sample;
  top1Changed: boolean;
  rows: PredictionRow[];
  currentImage: ShownImage;
  otherImage?: ShownImage;
  methods: ComparedMethod[];
}

export interface Comparison {
  other: ReleaseEntry & { manifest: Manifest };
  matched: ComparedSample[];
  onlyCurrent: Sample[];
  onlyOther: Sample[];
  /** Differences in what was analysed: model, config, tool, backend. */
  differences: { what: string; current: string; other: string }[];
}

function sampleImage(s: Sample, site: string): ShownImage {
  return { path: s.path, site, alt: `Input image ${s.source}`, caption: s.source };
}

function shownView(v: ExplanationView, site: (p: string) => string): ShownImage {
  const a = primaryArtifact(v);
  return { path: a.path, site: site(a.path), alt: a.alt?.trim() || a.title, caption: v.label, width: a.width, height: a.height };
}

/** The view of a card to compare: the one with `preferKey` if the card has it, else the card's first view. */
function pick(card: ExplanationCard, preferKey?: string): ExplanationView {
  return (preferKey !== undefined ? card.views.find((v) => v.key === preferKey) : undefined) ?? card.views[card.initial];
}

export function compare(current: Manifest, other: ReleaseEntry & { manifest: Manifest }): Comparison {
  const om = other.manifest;
  const otherFile = (p: string) => routes.otherArtifact(other.slug, p);
  const otherHas = (p: string) => {
    try {
      return existsSync(join(other.dir, ...releaseFileSegments(p)));
    } catch {
      return false;
    }
  };
  const curPlaced = artifactsFor(current);
  const othPlaced = artifactsFor(om);
  const byId = new Map(om.samples.map((s) => [s.id, s]));
  const matched: ComparedSample[] = [];
  for (const cs of current.samples) {
    const os = byId.get(cs.id);
    if (!os) continue;
    const classes = new Map<number, PredictionRow>();
    for (const p of cs.predictions) classes.set(p.class, { class: p.class, name: p.name, current: p.probability });
    for (const p of os.predictions) {
      const row = classes.get(p.class) ?? { class: p.class, name: p.name };
      row.other = p.probability;
      classes.set(p.class, row);
    }
    const rows = [...classes.values()].map((r) => ({ ...r, delta: r.current !== undefined && r.other !== undefined ? r.current - r.other : undefined }));
    rows.sort((a, b) => (b.current ?? -1) - (a.current ?? -1) || (b.other ?? -1) - (a.other ?? -1));
    const curCards = explanationCards(current, curPlaced.ofSample(cs.id), cs);
    const othCards = new Map(explanationCards(om, othPlaced.ofSample(os.id), os).map((c) => [c.key, c]));
    const methods: ComparedMethod[] = [];
    for (const c of curCards) {
      const oc = othCards.get(c.key);
      const cv = pick(c);
      const ov = oc ? pick(oc, cv.key) : undefined;
      const otherShown = ov && otherHas(primaryArtifact(ov).path) ? shownView(ov, otherFile) : undefined;
      methods.push({ key: c.key, title: c.title, current: shownView(cv, routes.artifact), other: otherShown });
      othCards.delete(c.key);
    }
    for (const oc of othCards.values()) {
      const ov = pick(oc);
      if (otherHas(primaryArtifact(ov).path)) methods.push({ key: oc.key, title: oc.title, other: shownView(ov, otherFile) });
    }
    matched.push({
      id: cs.id,
      current: cs,
      other: os,
      top1Changed: cs.predictions[0]?.class !== os.predictions[0]?.class,
      rows,
      currentImage: sampleImage(cs, routes.artifact(cs.path)),
      otherImage: otherHas(os.path) ? sampleImage(os, otherFile(os.path)) : undefined,
      methods,
    });
  }
  const ids = new Set(current.samples.map((s) => s.id));
  const differences: Comparison['differences'] = [];
  const diff = (what: string, a: string, b: string) => {
    if (a !== b) differences.push({ what, current: a, other: b });
  };
  diff('Model', current.model.name, om.model.name);
  diff('Model source', current.model.source, om.model.source);
  diff('Parameters', String(current.model.params), String(om.model.params));
  const weights = (m: Manifest) => (m.model.weightsSha256 ? `sha256 ${m.model.weightsSha256.slice(0, 12)}` : 'not recorded');
  diff('Weights', weights(current), weights(om));
  diff('Classes', String(current.model.classes.length), String(om.model.classes.length));
  diff('Config hash', current.configHash.slice(0, 12), om.configHash.slice(0, 12));
  diff('Tool version', current.tool.version, om.tool.version);
  diff('Backend', current.backend.name, om.backend.name);
  diff('Colour map', current.render.colormap, om.render.colormap);
  return {
    other,
    matched,
    onlyCurrent: current.samples.filter((s) => !byId.has(s.id)),
    onlyOther: om.samples.filter((s) => !ids.has(s.id)),
    differences,
  };
}

/** The other releases' files the compare pages show: absolute source and site path. */
export function compareCopies(loc: ReleaseLocation = releaseLocation()): { from: string; to: string }[] {
  const current = loadManifest(loc);
  const out = new Map<string, string>();
  for (const other of otherReleases(loc)) {
    const c = compare(current, other);
    for (const m of c.matched) {
      const shown = [m.otherImage, ...m.methods.map((x) => x.other)].filter((x): x is ShownImage => x !== undefined);
      for (const s of shown) out.set(s.site, join(other.dir, ...releaseFileSegments(s.path)));
    }
  }
  return [...out].map(([to, from]) => ({ from, to }));
}
