import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from '../errors.ts';
import { BaseAdapter, backwardBatchFor, initialWeight, weightSeed, type ConvGeometry, type GradientResult, type LayerInfo, type LayerRole, type ModelAdapter, type Objective } from './adapter.ts';
import './gradients.ts';
import { BATCH_NORM_OP, findGraphOutput, HARD_SWISH_OP, resolveTensor, stripPort, type GraphNodeDef } from './graph-rewrite.ts';
import { detectHead, scoresFromOutputs, type Head } from './head.ts';
import { GELU_OP, HARD_SIGMOID_OP, LAYER_NORM_OP } from './onnx/ops-math.ts';

export type { GraphNodeDef } from './graph-rewrite.ts';

const SKIP_OPS = new Set(['Const', 'Placeholder', 'NoOp', 'Identity', 'IdentityN', 'Snapshot', 'StopGradient']);

export interface GraphAdapterOptions {
  /**
   * Other names a layer may be asked for by (e.g. an ONNX model's tensor names) -> graph node.
   * `layer()`, `forward`, `gradient`, `weights` and `withRandomizedLayers` accept both; results
   * are keyed by the name asked for.
   */
  aliases?: ReadonlyMap<string, string>;
  /** Float weight constants that are not model parameters (counted in no layer's params). */
  nonParameters?: ReadonlySet<string>;
}

/**
 * A tfjs GraphModel (converted from a TF SavedModel / frozen graph) behind the adapter interface.
 * Load through loadModel, which splits the converter's fused ops first (graph-rewrite.ts).
 * The scores are found behind the signature's Identity chain; a final Softmax / Sigmoid is split
 * off and sets the head.
 * "Layers" are the graph's op nodes (Const, Placeholder and pass-through nodes left out); a node's
 * parameters are the sizes of the float weight constants it reads (integer constants such as
 * reduction axes or shapes are weights in model.json but not parameters). Gradients run through
 * `model.execute` (executeAsync cannot be differentiated, so control-flow graphs are refused).
 * Gradient w.r.t. a node: execute to the node, then differentiate
 * `execute({input: x, node: a}, logits)` w.r.t. a; the input is fed too, so paths that bypass
 * the node (skip connections) keep their values.
 * Layers are listed in topological order (the converter's node order when it already is one), so
 * "from the top" in the randomization cascade follows the data flow.
 */
export class GraphAdapter extends BaseAdapter implements ModelAdapter {
  readonly format = 'graph-model' as const;
  readonly inputShape: [number, number, number];
  readonly head: Head;
  readonly layers: LayerInfo[];
  backwardBatch: number;
  private readonly inputName: string;
  private readonly logitsNode: string;
  private readonly nodes = new Map<string, GraphNodeDef>();
  private readonly totalParams: number;
  private readonly aliases: ReadonlyMap<string, string>;

  constructor(private readonly model: tf.GraphModel, topology: { node?: GraphNodeDef[] }, weightSpecs: tf.io.WeightsManifestEntry[], options: GraphAdapterOptions = {}) {
    super();
    this.aliases = options.aliases ?? new Map();
    if (model.inputs.length !== 1 || model.outputs.length !== 1) {
      throw new ConvlensError(`the graph model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; convlens explains image classifiers with one input and one output`, {
        hint: 'Convert a single-input, single-output classifier signature.',
      });
    }
    const shape = model.inputs[0].shape ?? [];
    if (shape.length !== 4 || shape.slice(1).some((d) => d == null || d < 0)) {
      throw new ConvlensError(`the graph model input has shape [${shape.join(', ')}]; convlens needs a fixed image size [batch, height, width, channels]`, {
        hint: 'Convert the model with a fixed input size.',
      });
    }
    this.inputShape = shape.slice(1) as [number, number, number];
    this.inputName = model.inputs[0].name;
    for (const n of topology.node ?? []) this.nodes.set(n.name, n);
    const output = findGraphOutput(this.nodes, model.outputs[0].name);
    this.logitsNode = output.scores;

    const weightNames = new Set(weightSpecs.map((w) => w.name));
    const specSize = new Map(weightSpecs.filter((w) => w.dtype === 'float32' && !options.nonParameters?.has(w.name)).map((w) => [w.name, w.shape.reduce((a, b) => a * b, 1)]));
    this.totalParams = [...specSize.values()].reduce((a, b) => a + b, 0);
    const ops = topologicalOps(this.nodes).filter((n) => !SKIP_OPS.has(n.op));
    const shapes = this.probeShapes(ops.map((n) => n.name), topology.node ?? []);
    this.layers = ops.map((n) => {
      const ins = (n.input ?? []).filter((i) => !i.startsWith('^')).map(stripPort);
      const consts = ins.filter((i) => specSize.has(i));
      const inputs = ins.filter((i) => !weightNames.has(i)).map((i) => stripPort(resolveTensor(this.nodes, i)));
      const info: LayerInfo = {
        name: n.name,
        type: n.op,
        role: graphRole(n.op, inputs.length),
        outputShape: [null, ...(shapes.get(n.name) ?? []).slice(1)],
        params: consts.reduce((a, c) => a + (specSize.get(c) ?? 0), 0),
        inputs,
        conv: this.convGeometry(n, weightSpecs),
      };
      const pool = poolGeometry(n);
      if (pool) info.pool = pool;
      const pad = this.padAmounts(n);
      if (pad) info.pad = pad;
      return info;
    });
    const outShape = shapes.get(this.logitsNode) ?? [];
    if (outShape.length !== 2) {
      throw new ConvlensError(`the graph model output "${this.logitsNode}" has shape [${outShape.join(', ')}]; convlens needs class scores [batch, classes]`, {
        hint: 'Explain a classifier whose output gives one score per class.',
      });
    }
    this.head = detectHead(outShape[1], output.activation);
    this.backwardBatch = backwardBatchFor(this.layers, this.inputShape);
  }

  countParams(): number {
    return this.totalParams;
  }

  /** The layer called `name` or aliased by it (GraphAdapterOptions.aliases). */
  override layer(name: string): LayerInfo {
    return super.layer(this.aliases.get(name) ?? name);
  }

  /** The graph node a layer name (or alias) stands for. */
  private nodeOf(name: string): string {
    return this.aliases.get(name) ?? name;
  }

  weights(layerName: string): tf.Tensor[] {
    const node = this.nodes.get(this.nodeOf(layerName));
    if (!node) { this.layer(layerName); return []; }
    const all = this.model.weights;
    return (node.input ?? []).map(stripPort).filter((i) => all[i]).map((i) => all[i][0]);
  }

  forward(x: tf.Tensor4D, layerNames: readonly string[] = []): { logits: tf.Tensor2D; activations: Map<string, tf.Tensor> } {
    this.checkInput(x);
    for (const n of layerNames) this.layer(n);
    const names = [...new Set(layerNames)];
    return this.chunkedForward(x, (xb) => {
      const outs = this.model.execute({ [this.inputName]: xb }, [this.logitsNode, ...names.map((n) => this.nodeOf(n))]) as tf.Tensor[];
      const list = Array.isArray(outs) ? outs : [outs];
      const z = list[0] as tf.Tensor2D;
      const logits = scoresFromOutputs(this.head, z);
      if (logits !== z && !list.includes(z, 1)) z.dispose();
      return { logits, activations: new Map(names.map((n, i) => [n, list[i + 1]])) };
    });
  }

  gradient(x: tf.Tensor4D, objective: Objective, wrt: 'input' | string, layers: readonly string[] = []): GradientResult {
    this.checkInput(x);
    if (wrt !== 'input') this.layer(wrt);
    for (const n of layers) this.layer(n);
    const names = [...new Set(layers)];
    const outputs = [this.logitsNode, ...names.map((n) => this.nodeOf(n))];
    const target = this.nodeOf(wrt);
    const evaluate = (feed: Record<string, tf.Tensor>, rows: [number, number]) => {
      const res = this.model.execute(feed, outputs) as tf.Tensor[];
      const list = Array.isArray(res) ? res : [res];
      const logits = scoresFromOutputs(this.head, list[0] as tf.Tensor2D);
      return { logits, score: objective({ logits, activations: new Map(names.map((n, i) => [n, list[i + 1]])) }, rows) };
    };
    return this.microBatched(x, this.backwardBatch, (xb, rows) => tf.tidy(() => {
      // tf.grad disposes every tensor the differentiated function makes except the scalar it
      // returns: the logits escape as a kept clone, which is turned back into an ordinary tensor
      // (tracked by the caller's tidy) and always disposed here.
      let escaped: tf.Tensor2D | undefined;
      try {
        if (wrt === 'input') {
          const g = tf.grad((input: tf.Tensor) => {
            const r = evaluate({ [this.inputName]: input }, rows);
            escaped = tf.keep(r.logits.clone());
            return r.score;
          })(xb);
          return { grad: g, value: xb.clone(), logits: escaped!.clone() };
        }
        const value = this.model.execute({ [this.inputName]: xb }, target) as tf.Tensor;
        const g = tf.grad((a: tf.Tensor) => {
          const r = evaluate({ [this.inputName]: xb, [target]: a }, rows);
          escaped = tf.keep(r.logits.clone());
          return r.score;
        })(value);
        return { grad: g, value, logits: escaped!.clone() };
      } finally {
        escaped?.dispose();
      }
    }));
  }

  /**
   * A GraphModel's weights are the graph executor's weight map (constant name -> tensors), read
   * afresh by every execute. Each float32 weight constant a named node reads directly is replaced
   * by a seeded draw, chosen by the node's op and the input position, since a converted graph
   * keeps no Keras weight names (graphInitialWeight). The executor's map is swapped as a whole
   * (its setter also records which tensors are weights, so execute never disposes the draws) and
   * the original map object, with the original tensors, is put back afterwards.
   */
  async withRandomizedLayers<T>(layerNames: readonly string[], seed: number, fn: () => T | Promise<T>): Promise<T> {
    const executor = (this.model as unknown as { executor: { weightMap: Record<string, tf.Tensor[]> } }).executor;
    const original = executor.weightMap;
    const next: Record<string, tf.Tensor[]> = { ...original };
    const fresh: tf.Tensor[] = [];
    try {
      for (const asked of new Set(layerNames)) {
        this.layer(asked);
        const name = this.nodeOf(asked);
        const node = this.nodes.get(name)!;
        (node.input ?? []).forEach((raw, index) => {
          const input = stripPort(raw);
          const w = original[input]?.[0];
          if (raw.startsWith('^') || !w || w.dtype !== 'float32') return;
          const t = graphInitialWeight(node.op, index, w.shape, weightSeed(seed, name, index));
          fresh.push(t);
          next[input] = [t];
        });
      }
      executor.weightMap = next;
      return await fn();
    } finally {
      executor.weightMap = original;
      tf.dispose(fresh);
    }
  }

  dispose(): void {
    this.model.dispose();
  }

  private probeShapes(names: string[], nodes: readonly GraphNodeDef[]): Map<string, number[]> {
    const x = tf.zeros([1, ...this.inputShape]);
    let outs: tf.Tensor | tf.Tensor[];
    try {
      outs = this.model.execute({ [this.inputName]: x }, names);
    } catch (err) {
      x.dispose();
      const op = /Op is not supported: (\S+)/.exec((err as Error).message)?.[1];
      if (!op) throw err;
      const users = nodes.filter((n) => n.op === op).map((n) => `"${n.name}"`);
      throw new ConvlensError(`the graph uses the op ${op} (${users.slice(0, 3).join(', ')}${users.length > 3 ? `, and ${users.length - 3} more` : ''}), which TensorFlow.js cannot run`, {
        hint: 'Rebuild the model without it (or with an equivalent op), or convert the Keras model as a LayersModel instead.',
        cause: err,
      });
    }
    const list = Array.isArray(outs) ? outs : [outs];
    const shapes = new Map(names.map((n, i) => [n, list[i].shape as number[]]));
    tf.dispose([x, ...list]);
    return shapes;
  }

  /** Pad / PadV2 with constant paddings [[0, 0], [top, bottom], [left, right], [0, 0]]. */
  private padAmounts(n: GraphNodeDef): [number, number, number, number] | undefined {
    if (!['Pad', 'PadV2'].includes(n.op) || !n.input?.[1]) return undefined;
    const name = stripPort(n.input[1]);
    const t = (this.model.weights[name] ?? this.model.weights[stripPort(resolveTensor(this.nodes, name))])?.[0];
    if (!t || t.size !== 8) return undefined;
    const p = Array.from(t.dataSync(), Number);
    return [p[2], p[3], p[4], p[5]];
  }

  private convGeometry(n: GraphNodeDef, specs: tf.io.WeightsManifestEntry[]): ConvGeometry | undefined {
    if (!['Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative'].includes(n.op)) return undefined;
    const filter = specs.find((s) => s.name === stripPort(n.input?.[1] ?? ''));
    if (!filter) return undefined;
    const list = (k: string) => (n.attr?.[k]?.list?.i ?? []).map(Number);
    const strides = list('strides');
    const dil = list('dilations');
    const pad = n.attr?.padding?.s ? Buffer.from(n.attr.padding.s, 'base64').toString() : 'VALID';
    return {
      kernel: [filter.shape[0], filter.shape[1]],
      strides: [strides[1] ?? 1, strides[2] ?? 1],
      padding: pad === 'SAME' ? 'same' : 'valid',
      dilation: [dil[1] ?? 1, dil[2] ?? 1],
    };
  }
}

/** Graph ops by role (adapter.ts LayerRole), after graph-rewrite.ts split the fused ops. */
const GRAPH_ROLES: Record<Exclude<LayerRole, 'bias' | 'merge' | 'other'>, readonly string[]> = {
  convolution: ['Conv2D', '_FusedConv2D', 'Conv3D', 'Conv2DBackpropInput'],
  'depthwise-convolution': ['DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative'],
  dense: ['MatMul', '_FusedMatMul', 'FusedMatMul'],
  activation: ['Relu', 'Relu6', 'Elu', 'Selu', 'LeakyRelu', 'Prelu', 'Sigmoid', 'Tanh', 'Softplus', 'Softsign', 'Softmax', 'LogSoftmax', 'ClipByValue', HARD_SWISH_OP, HARD_SIGMOID_OP, GELU_OP],
  normalization: ['FusedBatchNorm', 'FusedBatchNormV2', 'FusedBatchNormV3', BATCH_NORM_OP, LAYER_NORM_OP, 'LRN'],
  'average-pooling': ['AvgPool', 'AvgPool3D', 'Mean'],
  'max-pooling': ['MaxPool', 'MaxPoolV2', 'MaxPool3D', 'Max'],
  reshape: ['Reshape', 'Squeeze', 'ExpandDims'],
  identity: ['Identity', 'IdentityN', 'Snapshot', 'StopGradient'],
  padding: ['Pad', 'PadV2', 'MirrorPad'],
};
const GRAPH_ROLE = new Map(Object.entries(GRAPH_ROLES).flatMap(([role, ops]) => ops.map((op) => [op, role as LayerRole] as const)));
/** Elementwise ops of two operands: a merge of two activations, or (one activation and a weight) a bias or a constant scale. */
const BINARY_OPS = new Set(['BiasAdd', 'Add', 'AddV2', 'Sub', 'Mul', 'RealDiv', 'Maximum', 'Minimum', 'SquaredDifference']);
const ADD_OPS = new Set(['BiasAdd', 'Add', 'AddV2']);
const CONCAT_OPS = new Set(['ConcatV2', 'Concat', 'Pack', 'AddN']);

/** The role of an op node that reads `activations` inputs besides its weight constants. */
export function graphRole(op: string, activations: number): LayerRole {
  if (BINARY_OPS.has(op)) return activations >= 2 ? 'merge' : ADD_OPS.has(op) && activations === 1 ? 'bias' : 'other';
  if (CONCAT_OPS.has(op)) return 'merge';
  return GRAPH_ROLE.get(op) ?? 'other';
}

/** MaxPool / AvgPool (NHWC): ksize and strides are [1, h, w, 1]. */
function poolGeometry(n: GraphNodeDef): ConvGeometry | undefined {
  if (!['MaxPool', 'AvgPool'].includes(n.op)) return undefined;
  const list = (k: string) => (n.attr?.[k]?.list?.i ?? []).map(Number);
  const ksize = list('ksize');
  const strides = list('strides');
  const pad = n.attr?.padding?.s ? Buffer.from(n.attr.padding.s, 'base64').toString() : 'VALID';
  return {
    kernel: [ksize[1] ?? 1, ksize[2] ?? 1],
    strides: [strides[1] ?? 1, strides[2] ?? 1],
    padding: pad === 'SAME' ? 'same' : 'valid',
    dilation: [1, 1],
  };
}

const KERNEL_OPS = new Set(['Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative', 'MatMul', '_FusedMatMul', 'BatchMatMul', 'BatchMatMulV2', 'Conv2DBackpropInput']);
const ONES_OPS = new Set(['Mul', 'RealDiv']);

/**
 * The re-initialised value of weight input `index` of a GraphModel node with op `op`:
 *  - the filter / matrix (input 1) of a convolution or matrix product: Glorot-uniform, as
 *    initialWeight's kernel rule (fans from the shape, channels last);
 *  - FusedBatchNorm scale (input 1) and variance (input 4), and the constant of a Mul or RealDiv
 *    (a folded scale): ones;
 *  - everything else (biases, offsets, means, fused bias arguments, PReLU alphas): zeros.
 * The Keras defaults initialWeight uses for LayersModels, matched by role instead of by name.
 */
export function graphInitialWeight(op: string, index: number, shape: readonly number[], seed: number): tf.Tensor {
  if (KERNEL_OPS.has(op) && index === 1) return initialWeight('kernel', shape, seed);
  if (((op.startsWith('FusedBatchNorm') || op === BATCH_NORM_OP) && (index === 1 || index === 4)) || ONES_OPS.has(op)) return tf.ones([...shape]);
  return tf.zeros([...shape]);
}

/**
 * Every node after the nodes it reads (iterative depth-first post-order, starting from each node
 * in the given order, so an order that already is topological is kept as it is).
 */
export function topologicalOps(nodes: ReadonlyMap<string, GraphNodeDef>): GraphNodeDef[] {
  const order: GraphNodeDef[] = [];
  const seen = new Set<string>();
  for (const start of nodes.values()) {
    if (seen.has(start.name)) continue;
    seen.add(start.name);
    const stack: { node: GraphNodeDef; next: number }[] = [{ node: start, next: 0 }];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const inputs = top.node.input ?? [];
      if (top.next < inputs.length) {
        const dep = nodes.get(stripPort(inputs[top.next++].replace(/^\^/, '')));
        if (dep && !seen.has(dep.name)) {
          seen.add(dep.name);
          stack.push({ node: dep, next: 0 });
        }
      } else {
        stack.pop();
        order.push(top.node);
      }
    }
  }
  return order;
}
