import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from '../errors.ts';

/** A GraphDef node as the TensorFlow.js converter writes it into model.json. */
export interface GraphNodeDef {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, GraphAttr>;
}

export interface GraphAttr {
  list?: { i?: (string | number)[]; s?: string[]; f?: number[] };
  s?: string;
  i?: string | number;
  f?: number;
  b?: boolean;
  type?: string;
  [key: string]: unknown;
}

/** Op of the hard-swish that the converter fuses into convolutions (`_FusedHardSwish`). */
export const HARD_SWISH_OP = 'ConvlensHardSwish';

/**
 * hard_swish(x) = x * relu6(x + 3) / 6 (Howard et al. 2019, MobileNetV3), written with a clip so
 * that the ReLU backward rules of guided backprop and deconvnet leave it alone (Captum replaces
 * nn.ReLU modules only).
 */
tf.registerOp(HARD_SWISH_OP, (node) => {
  const x = node.inputs[0];
  return tf.tidy(() => tf.mul(x, tf.div(tf.clipByValue(tf.add(x, 3), 0, 6), 6)));
});

/** Op of inference batch normalization, which FusedBatchNorm nodes become (splitFusedOps). */
export const BATCH_NORM_OP = 'ConvlensBatchNorm';

/**
 * Inference batch normalization y = x * s + (offset - mean * s), s = scale / sqrt(variance + eps),
 * inputs [x, scale, offset, mean, variance] as FusedBatchNorm's. Its gradient is dy * s; tfjs's
 * FusedBatchNorm gradient tiles 1/sqrt(var + eps) to the whole activation first.
 */
tf.registerOp(BATCH_NORM_OP, (node) => {
  const [x, scale, offset, mean, variance] = node.inputs;
  const eps = typeof node.attrs.epsilon === 'number' ? node.attrs.epsilon : 1e-3;
  return tf.tidy(() => {
    const s = tf.mul(scale, tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(x, s), tf.sub(offset, tf.mul(mean, s)));
  });
});

const BATCH_NORM_OPS = new Set(['FusedBatchNorm', 'FusedBatchNormV2', 'FusedBatchNormV3']);

const FUSED_BASE: Record<string, string> = {
  _FusedConv2D: 'Conv2D',
  FusedDepthwiseConv2dNative: 'DepthwiseConv2dNative',
  _FusedMatMul: 'MatMul',
};

/** Fused activations the converter emits -> the op that computes it as its own node. */
const ACTIVATION_OPS: Record<string, string> = {
  Relu: 'Relu',
  Relu6: 'Relu6',
  Elu: 'Elu',
  LeakyRelu: 'LeakyRelu',
  Sigmoid: 'Sigmoid',
  Tanh: 'Tanh',
  Prelu: 'Prelu',
  _FusedHardSwish: HARD_SWISH_OP,
};

/** Attributes of the fused node that belong to the fusion, not to the base op. */
const FUSION_ATTRS = new Set(['fused_ops', 'num_args', 'epsilon', 'leakyrelu_alpha', 'num_host_args', 'filter_format']);

const decode = (s: string) => Buffer.from(s, 'base64').toString();
const encode = (s: string) => Buffer.from(s).toString('base64');

export function stripPort(name: string): string {
  return name.replace(/^\^/, '').replace(/:\d+$/, '');
}

/**
 * Splits every fused convolution and matrix product (`_FusedConv2D`, `FusedDepthwiseConv2dNative`,
 * `_FusedMatMul`) into the base op, its bias (or batch normalization) and its activation, each
 * its own node; the activation keeps the fused node's name, so the graph's other nodes and the
 * layer names users see are unchanged, and the pieces are named `<name>/<op>`. Why:
 *  - the wasm backend has no kernel for some fused activations (`_FusedHardSwish`, Tanh);
 *  - while a gradient is recorded tfjs runs a fused op with an activation unfused, but one with
 *    only a bias stays fused, and its gradient always computes the weight gradient too (a bridged
 *    cpu kernel on wasm; see the tfjs note);
 *  - each piece is a layer methods can ask for (the convolution before its bias and activation).
 * Inference FusedBatchNorm nodes become BATCH_NORM_OP (no Tile in their gradient). The topology
 * is copied, never changed in place. Throws on a fusion it does not know.
 */
export function splitFusedOps(nodes: readonly GraphNodeDef[]): GraphNodeDef[] {
  const taken = new Set(nodes.map((n) => n.name));
  const fresh = (base: string) => {
    let name = base;
    for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    return name;
  };
  const out: GraphNodeDef[] = [];
  for (const node of nodes) {
    if (BATCH_NORM_OPS.has(node.op) && node.attr?.is_training?.b !== true) {
      out.push({ ...node, op: BATCH_NORM_OP });
      continue;
    }
    const baseOp = FUSED_BASE[node.op];
    if (!baseOp) {
      out.push(node);
      continue;
    }
    const fused = (node.attr?.fused_ops?.list?.s ?? []).map(decode);
    const inputs = node.input ?? [];
    const control = inputs.filter((i) => i.startsWith('^'));
    const data = inputs.filter((i) => !i.startsWith('^'));
    const args = data.slice(2);
    const baseAttrs = Object.fromEntries(Object.entries(node.attr ?? {}).filter(([k]) => !FUSION_ATTRS.has(k)));
    const steps: { op: string; args: number; attr?: Record<string, GraphAttr> }[] = [];
    let rest = fused[0] === 'NoOp' ? fused.slice(1) : fused;
    if (rest[0] === 'BiasAdd' || rest[0] === 'Add') {
      steps.push({ op: 'BiasAdd', args: 1, attr: node.attr?.data_format ? { data_format: node.attr.data_format } : {} });
      rest = rest.slice(1);
    } else if (rest[0] === 'FusedBatchNorm') {
      steps.push({ op: BATCH_NORM_OP, args: 4, attr: { epsilon: { f: Number(node.attr?.epsilon?.f ?? 1e-3) } } });
      rest = rest.slice(1);
    }
    if (rest.length > 1 || (rest.length === 1 && !ACTIVATION_OPS[rest[0]])) {
      throw new ConvlensError(`graph node "${node.name}" (${node.op}) fuses ${fused.join(' + ')}, which convlens cannot split into TensorFlow.js ops`, {
        hint: 'Convert the model without that fusion, or report the node and its fused_ops so convlens can learn it.',
      });
    }
    if (rest.length === 1) {
      const act = rest[0];
      steps.push({
        op: ACTIVATION_OPS[act],
        args: act === 'Prelu' ? 1 : 0,
        attr: act === 'LeakyRelu' ? { alpha: { f: Number(node.attr?.leakyrelu_alpha?.f ?? 0.2) } } : {},
      });
    }
    const last = steps.length;
    let prev = last === 0 ? node.name : fresh(`${node.name}/${baseOp}`);
    out.push({ name: prev, op: baseOp, input: [...data.slice(0, 2), ...control], attr: baseAttrs });
    let argAt = 0;
    steps.forEach((s, k) => {
      const name = k === last - 1 ? node.name : fresh(`${node.name}/${s.op}`);
      out.push({ name, op: s.op, input: [prev, ...args.slice(argAt, argAt + s.args)], attr: { ...(node.attr?.T ? { T: node.attr.T } : {}), ...s.attr } });
      argAt += s.args;
      prev = name;
    });
  }
  return out;
}

/** Ops that pass their input through unchanged (output port k of IdentityN is input k). */
const PASS_THROUGH = new Set(['Identity', 'IdentityN', 'Snapshot', 'StopGradient', 'PreventGradient', 'EnsureShape']);
const CALL_OPS = new Set(['PartitionedCall', 'StatefulPartitionedCall']);
const OUTPUT_ACTIVATIONS: Record<string, 'softmax' | 'sigmoid'> = { Softmax: 'softmax', LogSoftmax: 'softmax', Sigmoid: 'sigmoid' };

/**
 * The node and port that really compute a tensor: through Identity / IdentityN / Snapshot /
 * StopGradient chains (the converter ends every SavedModel signature output in an `Identity`).
 */
export function resolveTensor(nodes: ReadonlyMap<string, GraphNodeDef>, tensor: string): string {
  let cur = tensor.replace(/^\^/, '');
  for (let i = 0; i < 1000; i++) {
    const name = stripPort(cur);
    const port = Number(/:(\d+)$/.exec(cur)?.[1] ?? 0);
    const node = nodes.get(name);
    if (!node || !PASS_THROUGH.has(node.op)) return cur;
    const data = (node.input ?? []).filter((x) => !x.startsWith('^'));
    const next = node.op === 'IdentityN' ? data[port] : data[0];
    if (next === undefined) return cur;
    cur = next;
  }
  return cur;
}

export interface GraphOutput {
  /** Node whose output is the pre-activation class scores. */
  scores: string;
  /** The activation split off after it. */
  activation: 'softmax' | 'sigmoid' | 'none';
}

/**
 * The class scores of a graph whose output is `outputTensor`: the real producer behind pass-through
 * nodes; a final Softmax, LogSoftmax or Sigmoid is split off and its input is the score.
 */
export function findGraphOutput(nodes: ReadonlyMap<string, GraphNodeDef>, outputTensor: string): GraphOutput {
  const producer = stripPort(resolveTensor(nodes, outputTensor));
  const node = nodes.get(producer);
  if (node && CALL_OPS.has(node.op)) {
    throw new ConvlensError(`the graph model's output comes from a function call (node "${node.name}", ${node.op}), which convlens cannot look into`, {
      hint: 'Convert the SavedModel again with tensorflowjs_converter --input_format=tf_saved_model (4.x inlines the functions of a Keras model), or export the Keras model as a LayersModel.',
    });
  }
  const activation = node ? OUTPUT_ACTIVATIONS[node.op] : undefined;
  if (node && activation && node.input?.length) {
    return { scores: stripPort(resolveTensor(nodes, node.input[0])), activation };
  }
  return { scores: producer, activation: 'none' };
}
