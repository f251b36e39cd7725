import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from '../errors.ts';
import type { ModelAdapter } from './adapter.ts';
import { GraphAdapter, type GraphNodeDef } from './graph-adapter.ts';
import { splitFusedOps } from './graph-rewrite.ts';
import { artifactsHandler, findOnnxModel, readModelArtifacts, type ModelFormat } from './io.ts';
import { repairKerasModel } from './keras-compat.ts';
import { LayersAdapter } from './layers-adapter.ts';
import { loadOnnxModel } from './onnx/load-onnx.ts';

export interface LoadedModel {
  adapter: ModelAdapter;
  format: ModelFormat;
  /** model.json (or the .onnx file) as resolved (absolute path or URL). */
  location: string;
  /** See io.ts weightsHash. */
  weightsSha256: string;
}

/**
 * Loads a LayersModel or GraphModel from a folder, a model.json or an http(s) URL; or an ONNX
 * model (a .onnx file, or a folder holding one and no model.json), translated to a GraphModel.
 */
export async function loadModel(pathOrUrl: string, baseDir?: string): Promise<LoadedModel> {
  const onnx = await findOnnxModel(pathOrUrl, baseDir);
  if (onnx) {
    try {
      const { adapter, weightsSha256 } = await loadOnnxModel(onnx);
      return { adapter, format: 'onnx', location: onnx, weightsSha256 };
    } catch (err) {
      if (err instanceof ConvlensError) throw err;
      throw new ConvlensError(`cannot load the ONNX model at ${onnx}: ${(err as Error).message.split('\n')[0]}`, {
        hint: 'Check that the file is a complete ONNX export (with its external-data files beside it); report the message if it is.',
        cause: err,
      });
    }
  }
  const { artifacts, format, location, weightsSha256 } = await readModelArtifacts(pathOrUrl, baseDir);
  try {
    if (format === 'graph-model') {
      const graph = artifacts.modelTopology as { node?: GraphNodeDef[] };
      const topology = { ...graph, node: splitFusedOps(graph.node ?? []) };
      const model = await tf.loadGraphModel(artifactsHandler({ ...artifacts, modelTopology: topology }));
      return { adapter: new GraphAdapter(model, topology, artifacts.weightSpecs ?? []), format, location, weightsSha256 };
    }
    const model = await tf.loadLayersModel(artifactsHandler(repairKerasModel(artifacts)));
    return { adapter: new LayersAdapter(model), format, location, weightsSha256 };
  } catch (err) {
    if (err instanceof ConvlensError) throw err;
    const unset = /(\d+) of (\d+) weights are not set: (.*)/.exec((err as Error).message);
    if (unset) throw missingWeights(location, Number(unset[1]), unset[3].split(','), err);
    throw new ConvlensError(`cannot load the ${format} at ${location}: ${(err as Error).message.split('\n')[0]}`, {
      hint: 'Check that the model was converted by a tfjs version this tfjs (4.x) reads and that all weight shards are present.',
      cause: err,
    });
  }
}

/**
 * tfjs found layers whose weights model.json does not list. The TensorFlow.js converter (Keras 2
 * path) drops the weights of layers whose names contain "/" (MobileNetV3 names its batch
 * normalizations "Conv/BatchNorm"), so the values are not in the files at all.
 */
function missingWeights(location: string, count: number, names: string[], cause: unknown): ConvlensError {
  const layers = [...new Set(names.map((n) => n.split('/').slice(0, -1).join('/')))];
  const slashed = layers.some((l) => l.includes('/'));
  return new ConvlensError(`the weight files of ${location} hold no values for ${count} weights of ${layers.length} layers (${layers.slice(0, 3).join(', ')}${layers.length > 3 ? ', ...' : ''})`
    + (slashed ? '; the TensorFlow.js converter drops the weights of Keras layers whose names contain "/"' : ''), {
    hint: slashed
      ? 'Convert the SavedModel to a GraphModel instead (tensorflowjs_converter --input_format=tf_saved_model keeps every weight), or rename the layers without "/" before converting (README: Supported models).'
      : 'Check that every weight shard listed in model.json sits beside it and that the model was saved with all its weights.',
    cause,
  });
}
