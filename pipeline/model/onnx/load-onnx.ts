import * as tf from '@tensorflow/tfjs';
import { GraphAdapter } from '../graph-adapter.ts';
import { artifactsHandler, readBytes } from '../io.ts';
import { decodeOnnxModel } from './decode.ts';
import { translateOnnx } from './translate.ts';

/**
 * Loads an ONNX image classifier (a .onnx file or URL, and its external-data files beside it)
 * as a GraphAdapter: decoded (decode.ts), translated into a TensorFlow.js GraphModel
 * (translate.ts) and loaded with tf.loadGraphModel like a converted GraphModel. Layer names are
 * the ONNX node names; ONNX tensor names are accepted as aliases.
 */
export async function loadOnnxModel(location: string): Promise<{ adapter: GraphAdapter; weightsSha256: string }> {
  const model = await decodeOnnxModel(await readBytes(location), location, readBytes);
  const t = translateOnnx(model, location);
  const graph = await tf.loadGraphModel(artifactsHandler(t.artifacts));
  const adapter = new GraphAdapter(graph, { node: t.nodes }, t.weightSpecs, { aliases: t.aliases, nonParameters: t.helperConsts });
  return { adapter, weightsSha256: t.weightsSha256 };
}
