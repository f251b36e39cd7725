import { className, methodInfos, type Artifact, type Manifest, type MethodInfo, type Sample } from '../manifest.ts';
import { shortLayerName } from '../format.ts';

/**
 * The sample pages' explanation cards (also matched across releases on the compare pages): a
 * sample's pictures grouped into one card per method and kind, one tab per explained target.
 */

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

/**
 * An artifact id's card key and kind: `<key>/heatmap` and `<key>/overlay` are the two parts of
 * one `map` view; any other last segment names the kind of a picture of its own.
 */
export function splitId(a: Artifact): { key: string; kind: string; part?: 'heatmap' | 'overlay' } {
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
