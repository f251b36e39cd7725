import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parseManifest, type Artifact, type Manifest, type Sample } from '../../pipeline/manifest.ts';
import { methodSlugs, releaseFileSegments } from './paths.ts';

/**
 * The site's only view of the pipeline: the release's manifest.json read through the shared
 * `parseManifest`, plus the files that manifest lists. Settings come from the environment at
 * call time (never at import), because `buildSite` sets them per build in a long-lived process:
 * - CONVLENS_OUTPUT_DIR: the pipeline's output folder (default `output`, relative to the cwd)
 * - CONVLENS_RELEASE: the release folder name under `<output>/releases/` (required)
 */
export type { Artifact, Manifest, Sample };

export interface ReleaseLocation {
  outputDir: string;
  release: string;
  releaseDir: string;
  manifestPath: string;
}

export function releaseLocation(env: NodeJS.ProcessEnv = process.env): ReleaseLocation {
  const release = env.CONVLENS_RELEASE?.trim();
  if (!release) {
    throw new Error(
      'CONVLENS_RELEASE is not set: the site needs to know which release to show.\n' +
        '  Build through `convlens report` (or buildSite), or set CONVLENS_RELEASE=<name> for a release under output/releases/.',
    );
  }
  if (release === '.' || release === '..' || /[\\/]/.test(release)) {
    throw new Error(`CONVLENS_RELEASE must be a release folder name, not a path: ${JSON.stringify(release)}`);
  }
  const outputDir = resolve(env.CONVLENS_OUTPUT_DIR?.trim() || 'output');
  const releaseDir = join(outputDir, 'releases', release);
  return { outputDir, release, releaseDir, manifestPath: join(releaseDir, 'manifest.json') };
}

let cache: { key: string; manifest: Manifest } | undefined;

/** The validated manifest of the configured release; re-read only when the file changes. */
export function loadManifest(loc: ReleaseLocation = releaseLocation()): Manifest {
  let key: string;
  try {
    const st = statSync(loc.manifestPath);
    key = `${loc.manifestPath}:${st.mtimeMs}:${st.size}`;
  } catch {
    throw new Error(
      `no manifest for release "${loc.release}" at ${loc.manifestPath}\n` +
        '  Run the pipeline for this release first (convlens report), or check CONVLENS_OUTPUT_DIR / CONVLENS_RELEASE.',
    );
  }
  if (cache?.key === key) return cache.manifest;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(loc.manifestPath, 'utf8'));
  } catch (err) {
    throw new Error(`${loc.manifestPath} is not valid JSON: ${(err as Error).message}`);
  }
  const manifest = parseManifest(json, loc.manifestPath);
  cache = { key, manifest };
  return manifest;
}

/** Absolute path of a file the manifest lists; refuses anything that would leave the release folder. */
export function releaseFile(releasePath: string, loc: ReleaseLocation = releaseLocation()): string {
  const abs = resolve(loc.releaseDir, ...releaseFileSegments(releasePath));
  const rel = relative(loc.releaseDir, abs);
  if (!rel || rel.startsWith('..') || isAbsolute(rel)) throw new Error(`${JSON.stringify(releasePath)} is outside the release folder`);
  return abs;
}

/** Every release file the manifest lists (artifacts, their raw data, sample images), each once, in manifest order. */
export function listedFiles(manifest: Manifest): string[] {
  const files = new Set<string>();
  for (const s of manifest.samples) files.add(releaseFileSegments(s.path).join('/'));
  if (manifest.summary) for (const f of [manifest.summary.markdown, manifest.summary.html]) files.add(releaseFileSegments(f).join('/'));
  for (const a of manifest.artifacts) {
    files.add(releaseFileSegments(a.path).join('/'));
    if (a.raw) files.add(releaseFileSegments(a.raw.path).join('/'));
    for (const f of a.files ?? []) files.add(releaseFileSegments(f).join('/'));
  }
  return [...files];
}

/** The parsed JSON of a `kind: 'data'` artifact. */
export function readDataArtifact(artifact: Artifact, loc: ReleaseLocation = releaseLocation()): unknown {
  if (artifact.kind !== 'data') throw new Error(`artifact ${artifact.id} is an image, not data`);
  const file = releaseFile(artifact.path, loc);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`data artifact ${artifact.id} (${artifact.path}) could not be read as JSON: ${(err as Error).message}`);
  }
}

// ---- grouping ---------------------------------------------------------------------------

export interface MethodInfo {
  id: string;
  title: string;
  paper?: string;
  /** URL-safe, unique; used for method pages and in-page anchors. */
  slug: string;
}

/**
 * Methods in manifest order, then any method an artifact uses that `manifest.methods` does not
 * list (titled by its id), so no artifact is ever left without a heading.
 */
export function methodInfos(manifest: Manifest): MethodInfo[] {
  const ids = [...manifest.methods.map((m) => m.id), ...manifest.artifacts.map((a) => a.method)];
  const slugs = methodSlugs(ids);
  const seen = new Set<string>();
  const out: MethodInfo[] = [];
  for (const m of manifest.methods) {
    if (seen.has(m.id)) continue;
    seen.add(m.id);
    out.push({ id: m.id, title: m.title || m.id, paper: m.paper, slug: slugs.get(m.id)! });
  }
  for (const a of manifest.artifacts) {
    if (seen.has(a.method)) continue;
    seen.add(a.method);
    out.push({ id: a.method, title: a.method, slug: slugs.get(a.method)! });
  }
  return out;
}

export interface Group<K> {
  key: K;
  artifacts: Artifact[];
}

/** Groups in first-seen order; items keep their manifest order within a group. */
export function groupBy<K>(artifacts: readonly Artifact[], keyOf: (a: Artifact) => K): Group<K>[] {
  const groups = new Map<K, Artifact[]>();
  for (const a of artifacts) {
    const k = keyOf(a);
    const list = groups.get(k);
    if (list) list.push(a);
    else groups.set(k, [a]);
  }
  return [...groups].map(([key, list]) => ({ key, artifacts: list }));
}

/** Grouped by method, in `methodInfos` order. */
export function groupByMethod(manifest: Manifest, artifacts: readonly Artifact[]): { method: MethodInfo; artifacts: Artifact[] }[] {
  const byId = new Map(groupBy(artifacts, (a) => a.method).map((g) => [g.key, g.artifacts]));
  return methodInfos(manifest)
    .filter((m) => byId.has(m.id))
    .map((method) => ({ method, artifacts: byId.get(method.id)! }));
}

/** Grouped by layer in first-seen order; artifacts without a layer come last under `undefined`. */
export function groupByLayer(artifacts: readonly Artifact[]): Group<string | undefined>[] {
  const groups = groupBy(artifacts, (a) => a.layer);
  return [...groups.filter((g) => g.key !== undefined), ...groups.filter((g) => g.key === undefined)];
}

/** The method with a dedicated page of its own. */
export const FILTERS_METHOD = 'filters';

/**
 * Methods whose model-level artifacts have a home of their own rather than a method page:
 * layer-bound ones on the layer pages, dataset predictions and class visualizations on the
 * classes pages, the embedding on its page, the model summary in the overview's layer table.
 */
export const LAYER_METHODS = new Set([FILTERS_METHOD, 'activations', 'top-patches', 'class-visualization']);
export const DATASET_PREDICTIONS_METHOD = 'dataset-predictions';
export const CLASS_VISUALIZATION_METHOD = 'class-visualization';
export const EMBEDDING_METHOD = 'embedding';
export const MODEL_SUMMARY_METHOD = 'model-summary';
export const METRICS_METHOD = 'metrics';
/** The data artifact the metrics page reads; the page (and its nav entry) exist only with it. */
export const METRICS_ARTIFACT = 'metrics/metrics';

export function hasMetrics(manifest: Manifest): boolean {
  return manifest.artifacts.some((a) => a.id === METRICS_ARTIFACT && a.kind === 'data');
}

/** Where an artifact is shown (besides the filters page, which repeats the filters of every layer). */
export type Place =
  | { page: 'sample'; sample: string }
  | { page: 'layer'; layer: string }
  | { page: 'classes' }
  | { page: 'embedding' }
  | { page: 'metrics' }
  | { page: 'overview' }
  | { page: 'filters' }
  | { page: 'method'; method: string };

export function placeOf(a: Artifact, sampleIds: ReadonlySet<string>, metrics = true): Place {
  if (a.image !== undefined && sampleIds.has(a.image)) return { page: 'sample', sample: a.image };
  if (a.method === METRICS_METHOD && metrics) return { page: 'metrics' };
  if (a.method === MODEL_SUMMARY_METHOD && a.kind === 'data') return { page: 'overview' };
  if (a.method === DATASET_PREDICTIONS_METHOD) return { page: 'classes' };
  if (a.method === EMBEDDING_METHOD) return { page: 'embedding' };
  if (a.method === FILTERS_METHOD && a.layer === undefined) return { page: 'filters' };
  if (a.method === CLASS_VISUALIZATION_METHOD && a.layer === undefined && a.class !== undefined) return { page: 'classes' };
  if (LAYER_METHODS.has(a.method) && a.layer !== undefined) return { page: 'layer', layer: a.layer };
  return { page: 'method', method: a.method };
}

/**
 * Where each artifact is shown: on its sample's page when it explains a known sample, on its
 * layer's page, the classes, embedding or overview page for the methods that have one (see
 * `placeOf`), otherwise on its method's page. Filters are also gathered on the filters page.
 */
export function artifactsFor(manifest: Manifest) {
  const sampleIds = new Set(manifest.samples.map((s) => s.id));
  const metrics = hasMetrics(manifest);
  const placed = manifest.artifacts.map((a) => ({ a, place: placeOf(a, sampleIds, metrics) }));
  const where = (page: Place['page']) => placed.filter((p) => p.place.page === page).map((p) => p.a);
  return {
    ofSample: (id: string) => manifest.artifacts.filter((a) => a.image === id && sampleIds.has(id)),
    filters: manifest.artifacts.filter((a) => !(a.image !== undefined && sampleIds.has(a.image)) && a.method === FILTERS_METHOD),
    /** Model-level artifacts of the methods without a home of their own, grouped by method. */
    methodPages: groupByMethod(manifest, where('method')),
    onSamples: where('sample'),
    onLayers: where('layer'),
    onClasses: where('classes'),
    onEmbedding: where('embedding'),
  };
}

export function methodTitle(manifest: Manifest, id: string): string {
  return methodInfos(manifest).find((m) => m.id === id)?.title ?? id;
}

export function className(manifest: Manifest, index: number): string {
  return manifest.model.classes[index] ?? `class ${index}`;
}
