import { artifactsFor, hasMetrics, type Manifest } from './manifest.ts';
import { routes } from './paths.ts';
import { classesView } from './views/classes.ts';
import { embeddingPage } from './views/embedding.ts';
import { layerPages } from './views/layers.ts';

/**
 * The report's sections, derived from what the manifest holds: a section exists only when there
 * is something to show. The top nav and the overview's contents list both come from here, so a
 * new kind of page (metrics, when metric artifacts exist) is one more entry.
 */
export interface Section {
  id: string;
  label: string;
  /** Site path of the page (with `fragment` for an anchor on it). */
  target: string;
  fragment?: string;
  /** One line for the overview. */
  description: string;
  /** Whether the page at `here` (a site path) belongs to the section. */
  contains: (here: string) => boolean;
}

export function sections(manifest: Manifest): Section[] {
  const out: Section[] = [
    { id: 'overview', label: 'Overview', target: routes.overview, description: 'Model card, layers, samples, methods, timings and files.', contains: (h) => h === '' },
  ];
  const layers = layerPages(manifest);
  if (layers.length > 0) {
    out.push({
      id: 'layers',
      label: 'Layers',
      target: routes.layers,
      description: `${layers.length} layer${layers.length === 1 ? '' : 's'} with filters, activations, top patches or feature visualizations.`,
      contains: (h) => h.startsWith('layers/') || h === routes.filters,
    });
  }
  if (manifest.samples.length > 0) {
    out.push({
      id: 'samples',
      label: `Samples (${manifest.samples.length})`,
      target: routes.overview,
      fragment: 'samples',
      description: 'Top-5 predictions and every explanation method side by side, per sample.',
      contains: (h) => h.startsWith('samples/'),
    });
  }
  if (classesView(manifest)) {
    out.push({
      id: 'classes',
      label: 'Classes',
      target: routes.classes,
      description: 'Per class: accuracy, class visualizations and the dataset images the model is most and least sure about.',
      contains: (h) => h.startsWith('classes/'),
    });
  }
  if (embeddingPage(manifest)) {
    out.push({
      id: 'embedding',
      label: 'Embedding',
      target: routes.embedding,
      description: 'The dataset as a zoomable scatter plot of one layer\'s features.',
      contains: (h) => h.startsWith('embedding/'),
    });
  }
  if (hasMetrics(manifest)) {
    out.push({
      id: 'metrics',
      label: 'Metrics',
      target: routes.metrics,
      description: 'Do the maps mean anything? Deletion, insertion, the randomization test and the pointing game per method.',
      contains: (h) => h.startsWith('metrics/'),
    });
  }
  for (const { method, artifacts } of artifactsFor(manifest).methodPages) {
    const target = routes.method(method.slug);
    out.push({
      id: `method-${method.slug}`,
      label: method.title,
      target,
      description: `${artifacts.length} model-level artifact${artifacts.length === 1 ? '' : 's'}.`,
      contains: (h) => h === target,
    });
  }
  out.push({
    id: 'releases',
    label: 'Releases',
    target: routes.releases,
    description: 'Every release in the output folder, and this one compared with each of them.',
    contains: (h) => h.startsWith('releases/'),
  });
  return out;
}
