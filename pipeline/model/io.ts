import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ConvlensError } from '../errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../fs-atomic.ts';

/** What `model.path` named: a tfjs LayersModel, a tfjs GraphModel, or an ONNX file translated at load (model/onnx/). */
export type ModelFormat = 'layers-model' | 'graph-model' | 'onnx';

export interface LoadedArtifacts {
  artifacts: tf.io.ModelArtifacts;
  format: ModelFormat;
  /** The model.json location as given (absolute path or URL). */
  location: string;
  /** weightsHash(specs, shard bytes): tells whether two releases used the same weights. */
  weightsSha256: string;
}

/**
 * SHA-256 over the weight specs (name, shape, dtype, quantization, one JSON line) and then the
 * weight bytes in manifest order: the same for the same weights however they are split into
 * shards; any changed value, name or shape changes it. The topology is not included.
 */
export function weightsHash(specs: readonly tf.io.WeightsManifestEntry[], shards: readonly Uint8Array[]): string {
  const h = createHash('sha256');
  h.update(`${JSON.stringify(specs.map((w) => [w.name, w.shape, w.dtype, w.quantization ?? null]))}\n`);
  for (const b of shards) h.update(b);
  return h.digest('hex');
}

const isUrl = (s: string) => /^https?:\/\//i.test(s);

/**
 * Reads a tfjs model (model.json plus weight shards) from a local file, a folder holding
 * model.json, or an http(s) URL, without tfjs-node: shards are read in manifest order and joined.
 */
export async function readModelArtifacts(pathOrUrl: string, baseDir = process.cwd()): Promise<LoadedArtifacts> {
  const location = isUrl(pathOrUrl) ? pathOrUrl : await resolveModelJson(resolve(baseDir, pathOrUrl));
  const read = isUrl(location) ? fetchBytes : readLocal;
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(new TextDecoder().decode(await read(location))) as tf.io.ModelJSON;
  } catch (err) {
    if (err instanceof ConvlensError) throw err;
    throw new ConvlensError(`${location} is not valid JSON (${(err as Error).message})`, {
      hint: 'model.path must point at a TensorFlow.js model.json (from tensorflowjs_converter or model.save).',
    });
  }
  if (!json || typeof json !== 'object' || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new ConvlensError(`${location} is not a TensorFlow.js model.json (no modelTopology or weightsManifest)`, {
      hint: 'Convert the model with tensorflowjs_converter to a LayersModel or GraphModel first.',
    });
  }
  const format = detectFormat(json);
  const specs: tf.io.WeightsManifestEntry[] = [];
  let bytesRead = 0;
  const buffers: ArrayBuffer[] = [];
  const shards: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) {
      const shard = isUrl(location) ? new URL(p, location).toString() : join(dirname(location), p);
      const bytes = await read(shard);
      shards.push(bytes);
      bytesRead += bytes.byteLength;
      buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    }
  }
  const expected = specs.reduce((sum, w) => sum + weightBytes(w), 0);
  // string weights have no fixed size; a model with any is not checked
  if (bytesRead !== expected && !specs.some((w) => w.dtype === 'string')) {
    throw new ConvlensError(`the weight files of ${location} hold ${bytesRead.toLocaleString('en-US')} bytes, but its weightsManifest lists ${expected.toLocaleString('en-US')} (${bytesRead > expected ? 'extra bytes: a shard was appended to or replaced' : 'a shard is cut short'})`, {
      hint: 'Copy the model folder again from where it was converted (every group*-shard*.bin beside model.json, unmodified), or convert it again.',
    });
  }
  const artifacts: tf.io.ModelArtifacts = {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    weightSpecs: specs,
    weightData: tf.io.CompositeArrayBuffer.join(buffers),
    signature: json.signature,
    userDefinedMetadata: json.userDefinedMetadata,
    modelInitializer: json.modelInitializer,
  };
  return { artifacts, format, location, weightsSha256: weightsHash(specs, shards) };
}

/** Bytes of one weight in the shards: its elements times the (quantized) element size. */
function weightBytes(w: tf.io.WeightsManifestEntry): number {
  const n = w.shape.reduce((a, b) => a * b, 1);
  const q = w.quantization?.dtype;
  if (q) return n * (q === 'float16' || q === 'uint16' ? 2 : 1);
  if (w.dtype === 'complex64') return n * 8;
  return n * (w.dtype === 'bool' ? 1 : 4);
}

/**
 * The ONNX file `model.path` names, if it names one: a `.onnx` file or URL, or a folder without
 * model.json that holds exactly one `.onnx` file (several are refused, named). Undefined for
 * anything else (a TensorFlow.js model, or nothing: readModelArtifacts says what is missing).
 */
export async function findOnnxModel(pathOrUrl: string, baseDir = process.cwd()): Promise<string | undefined> {
  if (isUrl(pathOrUrl)) return /\.onnx$/i.test(new URL(pathOrUrl).pathname) ? pathOrUrl : undefined;
  const p = resolve(baseDir, pathOrUrl);
  const s = await stat(p).catch(() => undefined);
  if (!s) return undefined;
  if (!s.isDirectory()) return /\.onnx$/i.test(p) ? p : undefined;
  const names = await readdir(p);
  if (names.includes('model.json')) return undefined;
  const onnx = names.filter((n) => /\.onnx$/i.test(n)).sort();
  if (onnx.length > 1) {
    throw new ConvlensError(`the folder "${p}" holds ${onnx.length} ONNX files (${onnx.join(', ')}); convlens cannot tell which one to explain`, {
      hint: 'Set model.path to the .onnx file itself.',
    });
  }
  return onnx.length === 1 ? join(p, onnx[0]) : undefined;
}

/** The bytes of a local file or an http(s) URL, with a readable error when they cannot be read. */
export function readBytes(location: string): Promise<Uint8Array> {
  return isUrl(location) ? fetchBytes(location) : readLocal(location);
}

function detectFormat(json: tf.io.ModelJSON): 'layers-model' | 'graph-model' {
  if (json.format === 'graph-model') return 'graph-model';
  if (json.format === 'layers-model') return 'layers-model';
  const topo = json.modelTopology as Record<string, unknown>;
  return 'node' in topo ? 'graph-model' : 'layers-model';
}

async function resolveModelJson(p: string): Promise<string> {
  const s = await stat(p).catch(() => undefined);
  if (!s) {
    throw new ConvlensError(`no model at "${p}"`, {
      hint: 'Set model.path to a model.json, a .onnx file, a folder holding one of them, or an http(s) URL.',
    });
  }
  if (s.isDirectory()) {
    const inner = join(p, 'model.json');
    if (!(await stat(inner).catch(() => undefined))) {
      throw new ConvlensError(`the folder "${p}" holds no model.json and no .onnx file`, {
        hint: 'Set model.path to the model.json or .onnx file itself, or to the folder tensorflowjs_converter wrote.',
      });
    }
    return inner;
  }
  return p;
}

async function readLocal(p: string): Promise<Uint8Array> {
  try {
    return await readFile(p);
  } catch (err) {
    throw new ConvlensError(`cannot read "${p}" (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, {
      hint: 'Check that every file the model names (weight shards listed in model.json, ONNX external-data files) sits beside it.',
    });
  }
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new ConvlensError(`cannot fetch ${url} (${(err as Error).message})`, {
      hint: 'Check the URL and the network, or download the model and point model.path at the local folder.',
    });
  }
  if (!res.ok) {
    throw new ConvlensError(`fetching ${url} answered HTTP ${res.status}`, {
      hint: 'Check the URL in model.path; the weight shards must sit beside model.json on the server.',
    });
  }
  return new Uint8Array(await res.arrayBuffer());
}

/** An IOHandler over already-read artifacts, for tf.loadLayersModel / tf.loadGraphModel. */
export function artifactsHandler(artifacts: tf.io.ModelArtifacts): tf.io.IOHandler {
  return { load: async () => artifacts };
}

/** Saves a LayersModel as model.json + one weights.bin, atomically, without tfjs-node. */
export async function saveLayersModel(model: tf.LayersModel, dir: string): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const weightData = a.weightData instanceof ArrayBuffer ? a.weightData : tf.io.CompositeArrayBuffer.join(a.weightData ?? []);
      await writeFileAtomic(join(dir, 'weights.bin'), new Uint8Array(weightData));
      await writeJsonAtomic(join(dir, 'model.json'), {
        format: 'layers-model',
        generatedBy: a.generatedBy,
        convertedBy: a.convertedBy,
        modelTopology: a.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
      });
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}
