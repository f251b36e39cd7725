import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from '../errors.ts';
import type { ModelAdapter } from './adapter.ts';
import { GraphAdapter } from './graph-adapter.ts';
import { artifactsHandler, readModelArtifacts, type ModelFormat } from './io.ts';
import { LayersAdapter } from './layers-adapter.ts';

export interface LoadedModel {
  adapter: ModelAdapter;
  format: ModelFormat;
  /** model.json as resolved (absolute path or URL). */
  location: string;
  /** See io.ts weightsHash. */
  weightsSha256: string;
}

/** Loads a LayersModel or GraphModel from a folder, a model.json or an http(s) URL. */
export async function loadModel(pathOrUrl: string, baseDir?: string): Promise<LoadedModel> {
  const { artifacts, format, location, weightsSha256 } = await readModelArtifacts(pathOrUrl, baseDir);
  try {
    if (format === 'graph-model') {
      const model = await tf.loadGraphModel(artifactsHandler(artifacts));
      return { adapter: new GraphAdapter(model, artifacts.modelTopology as { node?: [] }, artifacts.weightSpecs ?? []), format, location, weightsSha256 };
    }
    const model = await tf.loadLayersModel(artifactsHandler(artifacts));
    return { adapter: new LayersAdapter(model), format, location, weightsSha256 };
  } catch (err) {
    if (err instanceof ConvlensError) throw err;
    throw new ConvlensError(`cannot load the ${format} at ${location}: ${(err as Error).message.split('\n')[0]}`, {
      hint: 'Check that the model was converted by a tfjs version this tfjs (4.x) reads and that all weight shards are present.',
      cause: err,
    });
  }
}
