import type { LayerSummary } from '../../../pipeline/manifest.ts';
import { artifactsFor, CLASS_VISUALIZATION_METHOD, methodInfos, type Artifact, type Manifest, type MethodInfo, type Sample } from '../manifest.ts';
import { layerSlugs } from '../paths.ts';
import { splitId } from './explanations.ts';

/**
 * The layer pages: per layer its filters, feature visualizations, top patches (pictures and
 * data table) and each sample's activations, from the manifest alone.
 */

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
