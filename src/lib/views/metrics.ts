import { MetricsFile } from '../../../pipeline/data-files.ts';
import { readDataFile } from '../files.ts';
import { METRICS_ARTIFACT, releaseLocation, type Artifact, type Manifest, type ReleaseLocation } from '../manifest.ts';

/** The metrics page (and each sample's scores): the release's metrics.json. */

/** The release's metrics.json artifact (see `hasMetrics`), if any. */
export function metricsArtifact(manifest: Manifest): Artifact | undefined {
  return manifest.artifacts.find((a) => a.id === METRICS_ARTIFACT && a.kind === 'data');
}

const metricsCache = new WeakMap<Manifest, MetricsFile | null>();

/**
 * The trust metrics (metrics/metrics.json from the pipeline's metrics stage) for the metrics page
 * and the sample pages, read once per manifest; undefined when the release has none. A file of
 * another shape fails the build (see readDataFile).
 */
export function metricsData(manifest: Manifest, loc: ReleaseLocation = releaseLocation()): MetricsFile | undefined {
  if (metricsCache.has(manifest)) return metricsCache.get(manifest) ?? undefined;
  const artifact = metricsArtifact(manifest);
  const data = artifact ? readDataFile(artifact, MetricsFile, loc) : undefined;
  metricsCache.set(manifest, data ?? null);
  return data;
}
