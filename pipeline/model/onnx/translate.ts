import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from '../../errors.ts';
import type { GraphNodeDef } from '../graph-rewrite.ts';
import { stripPort } from '../graph-rewrite.ts';
import { weightsHash } from '../io.ts';
import { onnxTypeName, type OnnxModel, type OnnxNode } from './decode.ts';
import type { OpTable } from './op-def.ts';
import { CONV_OPS } from './ops-conv.ts';
import { MATH_OPS } from './ops-math.ts';
import { SHAPE_OPS, tensorOf } from './ops-shape.ts';
import { Translator, sanitizeName, type Value } from './translator.ts';

export const ONNX_OPS: OpTable = { ...CONV_OPS, ...MATH_OPS, ...SHAPE_OPS };

/** Oldest default-domain opset whose operator forms the translation knows (Slice, Clip ... changed at 10 and 11). */
const MIN_OPSET = 9;

/** Name of the graph's image input (the Placeholder); layer lists use it for "the model input". */
export const INPUT_NODE = 'input';

export interface OnnxTranslation {
  /** For tf.loadGraphModel: format 'graph-model', topology {node}, weight specs and data. */
  artifacts: tf.io.ModelArtifacts;
  nodes: GraphNodeDef[];
  weightSpecs: tf.io.WeightsManifestEntry[];
  /** ONNX tensor names and node names that are not graph nodes -> the graph node computing them. */
  aliases: Map<string, string>;
  /** Float constants the translation added (padding values, pool divisors, clip bounds): not parameters. */
  helperConsts: Set<string>;
  /** io.ts weightsHash over the translated weight specs and bytes. */
  weightsSha256: string;
}

/**
 * Translates an ONNX image classifier into a TensorFlow.js GraphModel (GraphDef nodes as
 * model.json holds them, and their weights) computing the same function on NHWC images.
 *
 * - Refused before any work, in one message naming every offending node: operators without a
 *   translation (ONNX_OPS), attribute values a translation does not support (OpDef.check),
 *   nodes of a non-default domain; then inputs other than one [N, C, H, W] float image with fixed
 *   C, H, W (dynamic batch allowed) and outputs other than one.
 * - Values that depend only on initializers and Constant nodes are computed here (shape
 *   arithmetic: Shape, Gather, Unsqueeze, Concat, Cast, Range ...) and never become nodes; the
 *   shape of a computed tensor is its shape at batch 1 (Reshape keeps the batch as -1, see
 *   ops-shape.ts).
 * - Layout: see Translator (NHWC for images; an op that is not layout-aware gets NCHW back).
 * - Names: the node computing an ONNX node's first output carries the ONNX node's name
 *   (sanitised: no ":" or leading "^"; an unnamed node takes its first output's name); helper
 *   nodes are `<name>/<what>`. The placeholder is `input`. `aliases` maps ONNX output tensor names
 *   (and names of nodes that became no node, such as Identity) to graph nodes.
 * - Nodes the output does not depend on are dropped.
 */
export function translateOnnx(model: OnnxModel, location: string): OnnxTranslation {
  checkOperators(model, location);
  const graphInputs = model.inputs.filter((i) => !model.initializers.has(i.name));
  if (graphInputs.length !== 1 || model.outputs.length !== 1) {
    throw new ConvlensError(`the ONNX model ${location} has ${graphInputs.length} inputs and ${model.outputs.length} outputs; convlens explains image classifiers with one input and one output`, {
      hint: 'Export a single-input, single-output classifier (torch.onnx.export(model, x, ..., input_names=["input"], output_names=["logits"])).',
    });
  }
  const input = graphInputs[0];
  const dims = input.dims ?? [];
  if (dims.length !== 4 || dims.slice(1).some((d) => typeof d !== 'number')) {
    const shown = dims.map((d) => d ?? '?').join(', ');
    throw new ConvlensError(`the ONNX model input "${input.name}" has shape [${shown}]; convlens needs a fixed image size [batch, channels, height, width]`, {
      hint: 'Export with a fixed image size: dynamic axes for the batch only (torch.onnx.export(..., dynamic_axes={"input": {0: "batch"}})).',
    });
  }
  if (input.elemType !== 1) {
    throw new ConvlensError(`the ONNX model input "${input.name}" holds ${onnxTypeName(input.elemType)} values; convlens feeds float32 images`, {
      hint: 'Export the model with a float32 input.',
    });
  }
  const [n0, C, H, W] = dims as [number | string | undefined, number, number, number];

  const tr = new Translator(model.opset);
  try {
    const names = model.nodes.map((n, i) => sanitizeName(n.name || n.output[0] || `${n.opType}_${i}`));
    tr.reserve(INPUT_NODE);
    tr.begin({ name: INPUT_NODE, opType: 'Placeholder', domain: '', input: [], output: [], attrs: new Map() }, INPUT_NODE);
    names.forEach((n) => tr.reserve(n));
    tr.main('Placeholder', [], {
      dtype: { type: 'DT_FLOAT' },
      shape: { shape: { dim: [-1, H, W, C].map((d) => ({ size: String(d) })) } },
    });
    for (const [name, t] of model.initializers) tr.values.set(name, { shape: [...t.dims], const: tr.own(tensorOf(t)), layout: 'plain', batched: false });
    tr.values.set(input.name, { shape: [typeof n0 === 'number' ? n0 : 1, C, H, W], ref: INPUT_NODE, layout: 'nhwc', batched: true });

    model.nodes.forEach((node, i) => {
      tr.begin(node, names[i]);
      // intermediate tensors of folding and weight layout changes are freed; Translator.own keeps the rest
      tf.tidy(() => translateNode(tr, node));
      recordAliases(tr, node, names[i]);
    });

    const out = tr.values.get(model.outputs[0].name);
    if (!out?.ref) {
      throw new ConvlensError(`the output "${model.outputs[0].name}" of the ONNX model ${location} does not depend on its input`, {
        hint: 'Export the classifier itself, with the image as its input.',
      });
    }
    let outRef = out.layout === 'nhwc' ? tr.plain(out) : out.ref;
    if (outRef.includes(':') || outRef === INPUT_NODE) outRef = tr.op(sanitizeName(model.outputs[0].name), 'Identity', [outRef], { T: { type: 'DT_FLOAT' } });
    return assemble(tr, stripPort(outRef));
  } finally {
    tr.dispose();
  }
}

function translateNode(tr: Translator, node: OnnxNode): void {
  const def = ONNX_OPS[node.opType];
  const inputs = node.input.map((name) => (name ? tr.values.get(name) : undefined));
  const present = node.input.filter(Boolean);
  try {
    if (def.fold && present.length > 0 && inputs.every((v, i) => !node.input[i] || v?.const)) {
      const outs = def.fold(inputs.map((v) => v?.const), node, tr.opset);
      outs.forEach((t, k) => tr.set(k, { shape: t.shape, const: t, layout: 'plain', batched: false }));
      return;
    }
    def.emit(tr);
  } catch (err) {
    if (err instanceof ConvlensError) throw err;
    throw tr.error(`could not be translated: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * ONNX output tensors and ONNX node names that are not graph node names, mapped to the graph
 * node computing them (port 0 only: layers are nodes).
 */
function recordAliases(tr: Translator, node: OnnxNode, name: string): void {
  node.output.forEach((o, k) => {
    const ref = tr.values.get(o)?.ref;
    if (!ref || ref.includes(':')) return;
    if (o !== ref) tr.aliases.set(o, ref);
    if (k === 0 && node.name && node.name !== ref) tr.aliases.set(node.name, ref);
    if (k === 0 && name !== ref) tr.aliases.set(name, ref);
  });
}

/** Keeps the nodes the output depends on, and packs their constants into weight specs and one buffer. */
function assemble(tr: Translator, output: string): OnnxTranslation {
  const byName = new Map(tr.nodes.map((n) => [n.name, n]));
  const live = new Set<string>();
  const stack = [output];
  while (stack.length) {
    const name = stack.pop()!;
    if (live.has(name)) continue;
    live.add(name);
    for (const i of byName.get(name)?.input ?? []) stack.push(stripPort(i));
  }
  const nodes = tr.nodes.filter((n) => live.has(n.name));
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const n of nodes) {
    if (n.op !== 'Const') continue;
    const t = tr.consts.get(n.name)!;
    const data = t.dtype === 'float32' ? Float32Array.from(t.dataSync() as Float32Array) : Int32Array.from(t.dataSync() as Int32Array);
    weightSpecs.push({ name: n.name, shape: [...t.shape], dtype: t.dtype as 'float32' | 'int32' });
    parts.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  const total = parts.reduce((s, p) => s + p.byteLength, 0);
  const joined = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { joined.set(p, at); at += p.byteLength; }
  const aliases = new Map([...tr.aliases].filter(([, node]) => live.has(node)));
  const helperConsts = new Set([...tr.helperConsts].filter((c) => live.has(c)));
  return {
    artifacts: {
      format: 'graph-model',
      generatedBy: 'onnx',
      convertedBy: 'convlens ONNX translation',
      modelTopology: { node: nodes, library: {}, versions: {} },
      weightSpecs,
      weightData: joined.buffer,
    },
    nodes,
    weightSpecs,
    aliases,
    helperConsts,
    weightsSha256: weightsHash(weightSpecs, [joined]),
  };
}

/** Every node convlens cannot translate, in one error (before any work). */
function checkOperators(model: OnnxModel, location: string): void {
  const problems: string[] = [];
  if (model.opset < MIN_OPSET) {
    throw new ConvlensError(`the ONNX model ${location} uses opset ${model.opset}; convlens translates opset ${MIN_OPSET} and later`, {
      hint: 'Export again with a recent exporter (torch.onnx.export(..., opset_version=17)).',
    });
  }
  model.nodes.forEach((n, i) => {
    const label = `"${n.name || n.output[0] || `#${i}`}" (${n.domain ? `${n.domain}::` : ''}${n.opType}`;
    if (n.domain) { problems.push(`${label}: domain ${n.domain})`); return; }
    const def = ONNX_OPS[n.opType];
    if (!def) { problems.push(`${label})`); return; }
    const why = def.check?.(n, model.opset);
    if (why) problems.push(`${label} with ${why})`);
  });
  if (problems.length) {
    throw new ConvlensError(`the ONNX model ${location} (opset ${model.opset}) has ${problems.length} node${problems.length > 1 ? 's' : ''} convlens cannot translate: ${problems.join(', ')}`, {
      hint: `Export the model without these operators or settings, or replace them with supported ones: ${Object.keys(ONNX_OPS).sort().join(', ')}.`,
    });
  }
}

export type { Value };
