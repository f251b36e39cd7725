import { DatasetPredictionsFile, type ClassPredictions, type DatasetExample } from '../../../pipeline/data-files.ts';
import { isListed, readDataFile } from '../files.ts';
import {
  artifactsFor,
  CLASS_VISUALIZATION_METHOD,
  DATASET_PREDICTIONS_METHOD,
  releaseLocation,
  type Artifact,
  type Manifest,
  type ReleaseLocation,
} from '../manifest.ts';

/**
 * The classes pages: per class its dataset predictions (accuracy, the most and least sure images)
 * and its class visualizations; and the model card's dataset accuracy.
 */
export type { ClassPredictions, DatasetExample };

export interface DatasetPredictions {
  artifact: Artifact;
  count: number;
  labelled?: number;
  accuracy?: number;
  perClass: ClassPredictions[];
}

/**
 * The dataset-predictions artifact's file, if the release has one; examples whose thumbnail the
 * manifest does not list are left out. A file of another shape fails the build (see readDataFile).
 */
export function datasetPredictions(manifest: Manifest, loc: ReleaseLocation = releaseLocation()): DatasetPredictions | undefined {
  const artifact = manifest.artifacts.find((a) => a.method === DATASET_PREDICTIONS_METHOD && a.kind === 'data');
  if (!artifact) return undefined;
  const d = readDataFile(artifact, DatasetPredictionsFile, loc);
  const shown = (e: DatasetExample) => isListed(manifest, e.thumbnail);
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
