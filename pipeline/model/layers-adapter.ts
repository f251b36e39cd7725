import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from '../errors.ts';
import { detectHead, scoresFromOutputs, type Head } from './head.ts';
import { AUGMENTATION, groupedConv2d } from './keras-compat.ts';
import { BaseAdapter, backwardBatchFor, initialWeight, weightSeed, type ConvGeometry, type GradientResult, type LayerInfo, type LayerRole, type ModelAdapter, type Objective } from './adapter.ts';

/* Internals of tfjs-layers read here (stable since tfjs 1.x): Container.nodesByDepth, Node.*, and
 * the conv/dense fields kernel, bias, strides, padding, dilationRate, dataFormat, activation,
 * the pooling field poolSize and the ZeroPadding2D / Cropping2D fields padding / cropping. */
interface SymTensor { id: number; shape: (number | null)[] }
interface LNode { outboundLayer: LLayer; inputTensors: SymTensor[]; outputTensors: SymTensor[]; callArgs?: Record<string, unknown> }
interface LLayer {
  name: string;
  getClassName(): string;
  countParams(): number;
  weights: { read(): tf.Tensor; name: string; originalName?: string }[];
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[];
  inboundNodes: LNode[];
  outputShape: (number | null)[] | (number | null)[][];
  // conv / dense
  kernel?: { read(): tf.Tensor };
  bias?: { read(): tf.Tensor } | null;
  useBias?: boolean;
  kernelSize?: number[];
  /** Conv2D groups (keras-compat.ts). */
  groups?: number;
  strides?: number[] | number;
  /** 'same' | 'valid' for convolutions and pooling; [[top, bottom], [left, right]] for ZeroPadding2D. */
  padding?: string | number[][];
  dilationRate?: number | number[];
  // depthwise / separable convolutions
  depthwiseKernel?: { read(): tf.Tensor };
  pointwiseKernel?: { read(): tf.Tensor };
  // batch normalization
  gamma?: { read(): tf.Tensor } | null;
  beta?: { read(): tf.Tensor } | null;
  movingMean?: { read(): tf.Tensor };
  movingVariance?: { read(): tf.Tensor };
  epsilon?: number;
  axis?: number | number[];
  // pooling / cropping
  poolSize?: number[];
  cropping?: number[][];
  dataFormat?: string;
  activation?: { apply(x: tf.Tensor): tf.Tensor; getClassName(): string } | null;
  // ReLU layer
  maxValue?: number | null;
  // containers
  nodesByDepth?: Record<string, LNode[]>;
  layers?: LLayer[];
  inputs?: SymTensor[];
  outputs?: SymTensor[];
}

interface Step {
  layer: LLayer;
  inputIds: number[];
  outputIds: number[];
  callArgs: Record<string, unknown>;
  /** Set when the layer is a nested model: its own steps run in place of a call. */
  inner?: Graph;
  /** A batch normalization folded into this convolution / dense step's weights (foldBatchNorms). */
  foldedInto?: Step;
  /** The convolution / dense step this batch normalization is folded into. */
  foldFrom?: Step;
}

interface Graph {
  inputIds: number[];
  outputIds: number[];
  steps: Step[];
}

interface RunOptions {
  /** Layer name -> value used instead of computing the layer. */
  override?: { layer: string; value: tf.Tensor };
  /** Symbolic id -> value from an earlier pass, reused for nodes that do not depend on the override. */
  reuse?: Map<number, tf.Tensor>;
  /** Record every computed value here (symbolic id -> tensor). */
  record?: Map<number, tf.Tensor>;
  /** Layer names whose outputs to return. */
  keep: ReadonlySet<string>;
  /**
   * Dispose every intermediate value as soon as its last reader has run, and each layer's
   * temporaries at once (forward passes only: a gradient needs them all). Peak memory is then
   * about the widest few activations of the batch, not the sum of all of them.
   */
  release?: boolean;
}

/** The output activation a layer's `activation` (or the layer itself) applies, if convlens splits it off. */
function outputActivation(cls: string, act: string | undefined): 'softmax' | 'sigmoid' | undefined {
  if (cls === 'Softmax') return 'softmax';
  const a = act?.toLowerCase();
  return a === 'softmax' || a === 'sigmoid' ? a : undefined;
}

/**
 * Executes a tfjs LayersModel with its own graph walk (the same order as
 * Container.runInternalGraph), so that:
 *  - any layers' activations come out of one pass;
 *  - Conv2D and Dense run as unfused conv2d/matMul + bias + activation, since tfjs-layers' fused
 *    ops always compute weight gradients (many times slower, and missing kernels on wasm);
 *  - a layer's value can be replaced, to differentiate w.r.t. it (nodes that do not depend on it
 *    reuse the first pass's values, so skip connections in DAG models stay correct);
 *  - a final softmax or sigmoid is split off, to expose the scores before it (head.ts);
 *  - inference batch normalization runs as y = x * scale + shift (scale = gamma / sqrt(var + eps),
 *    shift = beta - mean * scale), whose gradient is dy * scale, instead of tfjs's batchNorm, whose
 *    gradient tiles 1/sqrt(var + eps) to the whole activation first; after a linear Conv2D,
 *    DepthwiseConv2D, SeparableConv2D or Dense that feeds nothing else it is folded into that
 *    layer's weights (W * scale, (b - mean) * scale + beta), so the pair costs one convolution.
 *    The convolution's own output is still computed when a method asks for it or differentiates
 *    w.r.t. it;
 *  - relu6 (activation 'relu6', or a ReLU layer with maxValue 6), which tfjs-layers computes as
 *    min(relu(x), 6), runs as tf.relu6 (same values): one op, which the ReLU rules of
 *    relu-rules.ts leave alone (as Captum leaves nn.ReLU6), where the inner relu would take them.
 * Nested models are expanded; their layers are listed under their own names.
 */
export class LayersAdapter extends BaseAdapter implements ModelAdapter {
  readonly format = 'layers-model' as const;
  readonly inputShape: [number, number, number];
  readonly head: Head;
  readonly layers: LayerInfo[];
  backwardBatch: number;
  private readonly graph: Graph;
  private readonly rawLayers = new Map<string, LLayer>();
  /** The symbolic id of the scores: the input of a final softmax / sigmoid layer, else the model output. */
  private readonly logitsId: number;
  /** Set when the output layer applies the softmax / sigmoid itself (Dense(..., activation: 'softmax')). */
  private readonly splitActivationOf?: string;
  private readonly outputOwner = new Map<number, string>();

  constructor(private readonly model: tf.LayersModel) {
    super();
    if (model.inputs.length !== 1 || model.outputs.length !== 1) {
      throw new ConvlensError(`the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; convlens explains image classifiers with one input and one output`, {
        hint: 'Export a single-input, single-output classifier (wrap the part to explain in a tf.model).',
      });
    }
    const shape = model.inputs[0].shape;
    if (shape.length !== 4 || shape.slice(1).some((d) => d == null)) {
      throw new ConvlensError(`the model input has shape [${shape.map((d) => d ?? 'null').join(', ')}]; convlens needs images [batch, height, width, channels] with a fixed size`, {
        hint: 'Rebuild or convert the model with a fixed input size (for example 224x224x3).',
      });
    }
    this.inputShape = shape.slice(1) as [number, number, number];
    const functional = tf.model({ inputs: model.inputs, outputs: model.outputs }) as unknown as LLayer;
    this.graph = this.buildGraph(functional);
    this.layers = this.describe(this.graph);
    const outShape = model.outputs[0].shape;
    if (outShape.length !== 2) {
      throw new ConvlensError(`the model output has shape [${outShape.map((d) => d ?? 'null').join(', ')}]; convlens needs class scores [batch, classes]`, {
        hint: 'Explain a classifier whose last layer gives one score per class.',
      });
    }
    const outId = this.graph.outputIds[0];
    const lastStep = this.findProducer(this.graph, outId);
    this.logitsId = outId;
    let activation: Head['activation'] = 'none';
    if (lastStep) {
      const cls = lastStep.layer.getClassName();
      const act = outputActivation(cls, lastStep.layer.activation?.getClassName());
      if (act && (cls === 'Softmax' || cls === 'Activation') && lastStep.inputIds.length === 1) {
        this.logitsId = lastStep.inputIds[0];
        activation = act;
      } else if (act && (cls === 'Dense' || cls === 'Conv2D')) {
        this.splitActivationOf = lastStep.layer.name;
        activation = act;
      }
    }
    this.head = detectHead(outShape[1] ?? 0, activation);
    this.backwardBatch = backwardBatchFor(this.layers, this.inputShape);
  }

  countParams(): number {
    return this.model.countParams();
  }

  weights(layerName: string): tf.Tensor[] {
    this.layer(layerName);
    const l = this.rawLayers.get(layerName);
    return (l?.weights ?? []).map((w) => w.read());
  }

  forward(x: tf.Tensor4D, layerNames: readonly string[] = []): { logits: tf.Tensor2D; activations: Map<string, tf.Tensor> } {
    this.checkInput(x);
    for (const n of layerNames) this.layer(n);
    const names = [...new Set(layerNames)];
    return this.chunkedForward(x, (xb) => {
      // tf.tidy keeps tensors in arrays and plain objects, not in Maps
      const [logits, ...acts] = tf.tidy(() => {
        const { logits, kept } = this.run(xb, { keep: new Set(names), release: true });
        return [scoresFromOutputs(this.head, logits), ...names.map((n) => kept.get(n)!)];
      });
      return { logits: logits as tf.Tensor2D, activations: new Map(names.map((n, i) => [n, acts[i]])) };
    });
  }

  gradient(x: tf.Tensor4D, objective: Objective, wrt: 'input' | string, layers: readonly string[] = []): GradientResult {
    this.checkInput(x);
    if (wrt !== 'input') this.layer(wrt);
    for (const n of layers) this.layer(n);
    const keep = new Set(layers);
    return this.microBatched(x, this.backwardBatch, (xb, rows) => tf.tidy(() => {
      // tf.grad / engine.gradients dispose every tensor the differentiated function makes except
      // the scalar it returns: the logits escape as a kept clone, which is turned back into an
      // ordinary tensor (tracked by the caller's tidy) and always disposed here.
      let escaped: tf.Tensor2D | undefined;
      try {
        if (wrt === 'input') {
          const f = (input: tf.Tensor) => {
            const { logits: z, kept } = this.run(input as tf.Tensor4D, { keep });
            const logits = scoresFromOutputs(this.head, z);
            escaped = tf.keep(logits.clone());
            return objective({ logits, activations: kept }, rows);
          };
          const { grads } = tf.engine().gradients(() => f(xb), [xb]) as unknown as { grads: tf.Tensor[] };
          return { grad: grads[0], value: xb.clone(), logits: escaped!.clone() };
        }
        const record = new Map<number, tf.Tensor>();
        const first = this.run(xb, { keep: new Set([wrt]), record });
        const value = first.kept.get(wrt)!;
        const g = tf.grad((a: tf.Tensor) => {
          const { logits: z, kept } = this.run(xb, { keep, override: { layer: wrt, value: a }, reuse: record });
          const logits = scoresFromOutputs(this.head, z);
          escaped = tf.keep(logits.clone());
          return objective({ logits, activations: kept }, rows);
        })(value);
        return { grad: g, value, logits: escaped!.clone() };
      } finally {
        escaped?.dispose();
      }
    }));
  }

  /**
   * Weights are tfjs Variables (LayerVariable.read() is the Variable itself), which every call
   * reads afresh. Each is pointed at a fresh draw with Variable.assign (bypassing the layer's
   * constraint) while a clone keeps the original buffer alive; the restore assigns that clone back,
   * so the weights afterwards are the very same buffers, bit for bit.
   */
  async withRandomizedLayers<T>(layerNames: readonly string[], seed: number, fn: () => T | Promise<T>): Promise<T> {
    const targets = [...new Set(layerNames)].flatMap((name) => {
      this.layer(name);
      return (this.rawLayers.get(name)?.weights ?? [])
        .map((w, index) => ({ variable: w.read() as tf.Variable, name: w.originalName ?? w.name, layer: name, index }))
        .filter((t) => t.variable.dtype === 'float32');
    });
    const saved: { variable: tf.Variable; original: tf.Tensor }[] = [];
    try {
      for (const t of targets) {
        const original = tf.clone(t.variable);
        saved.push({ variable: t.variable, original });
        const fresh = initialWeight(t.name, t.variable.shape, weightSeed(seed, t.layer, t.index));
        try {
          t.variable.assign(fresh);
        } finally {
          fresh.dispose();
        }
      }
      return await fn();
    } finally {
      for (const { variable, original } of saved.reverse()) {
        variable.assign(original);
        original.dispose();
      }
    }
  }

  dispose(): void {
    this.model.dispose();
  }

  // ---- graph construction ----

  private buildGraph(container: LLayer): Graph {
    const depths = Object.keys(container.nodesByDepth ?? {}).map(Number).sort((a, b) => b - a);
    const steps: Step[] = [];
    for (const d of depths) {
      for (const node of container.nodesByDepth![d]) {
        const layer = node.outboundLayer;
        if (layer.getClassName() === 'InputLayer') continue;
        const step: Step = {
          layer,
          inputIds: node.inputTensors.map((t) => t.id),
          outputIds: node.outputTensors.map((t) => t.id),
          callArgs: { ...(node.callArgs ?? {}) },
        };
        if (layer.nodesByDepth && layer.layers) {
          const inner = this.buildGraph(layer);
          step.inner = inner;
        } else {
          if (!this.rawLayers.has(layer.name)) this.rawLayers.set(layer.name, layer);
        }
        steps.push(step);
      }
    }
    const graph = {
      inputIds: (container.inputs ?? []).map((t) => t.id),
      outputIds: (container.outputs ?? []).map((t) => t.id),
      steps,
    };
    foldBatchNorms(graph);
    return graph;
  }

  private findProducer(graph: Graph, id: number): Step | undefined {
    for (const s of graph.steps) {
      if (s.outputIds.includes(id)) {
        if (s.inner) return this.findProducer(s.inner, s.inner.outputIds[s.outputIds.indexOf(id)]);
        return s;
      }
    }
    return undefined;
  }

  private describe(graph: Graph): LayerInfo[] {
    const out: LayerInfo[] = [];
    const walk = (g: Graph) => {
      for (const s of g.steps) {
        if (s.inner) {
          // map inner inputs to the outer producers for the "inputs" column
          walk(s.inner);
          continue;
        }
        for (const id of s.outputIds) this.outputOwner.set(id, s.layer.name);
        if (out.some((l) => l.name === s.layer.name)) continue;
        const shape = Array.isArray(s.layer.outputShape[0]) ? (s.layer.outputShape as (number | null)[][])[0] : (s.layer.outputShape as (number | null)[]);
        out.push({
          name: s.layer.name,
          type: s.layer.getClassName(),
          role: kerasRole(s.layer),
          outputShape: [...shape],
          params: s.layer.countParams(),
          inputs: [],
          conv: convGeometry(s.layer),
        });
        const pool = poolGeometry(s.layer);
        if (pool) out[out.length - 1].pool = pool;
        const pad = padAmounts(s.layer);
        if (pad) out[out.length - 1].pad = pad;
      }
    };
    walk(graph);
    // inputs by producer of each input tensor (nested models: the inner graph's ids)
    const idOwner = this.outputOwner;
    const fill = (g: Graph, alias: Map<number, number>) => {
      for (const s of g.steps) {
        if (s.inner) {
          const innerAlias = new Map(alias);
          s.inner.inputIds.forEach((innerId, i) => innerAlias.set(innerId, resolveAlias(alias, s.inputIds[i])));
          s.outputIds.forEach((outerId, i) => alias.set(outerId, resolveAlias(innerAlias, s.inner!.outputIds[i])));
          fill(s.inner, innerAlias);
          continue;
        }
        const info = out.find((l) => l.name === s.layer.name)!;
        if (info.inputs.length) continue;
        info.inputs = s.inputIds.map((id) => idOwner.get(resolveAlias(alias, id)) ?? 'input');
      }
    };
    fill(graph, new Map());
    return out;
  }

  // ---- execution ----

  private run(x: tf.Tensor4D, opts: RunOptions): { logits: tf.Tensor2D; kept: Map<string, tf.Tensor> } {
    const values = new Map<number, tf.Tensor>();
    const live = new Set<number>();
    const kept = new Map<string, tf.Tensor>();
    const release = opts.release === true && !opts.override && !opts.reuse && !opts.record;
    // release: planned reads per symbolic id, and the reads still to come per tensor (ids alias
    // one tensor across nested models and pass-through layers)
    const reads = release ? this.plannedReads(opts.keep) : undefined;
    const pending = new Map<tf.Tensor, number>();
    const held = new Set<tf.Tensor>([x]);
    const bind = (id: number, t: tf.Tensor) => {
      values.set(id, t);
      if (reads) pending.set(t, (pending.get(t) ?? 0) + (reads.get(id) ?? 0));
    };
    const consumed = (ids: readonly number[]) => {
      if (!reads) return;
      for (const id of ids) {
        const t = values.get(id)!;
        const left = (pending.get(t) ?? 0) - 1;
        pending.set(t, left);
        if (left <= 0 && !held.has(t) && !t.isDisposed) t.dispose();
      }
    };
    const call = (f: () => tf.Tensor[]) => (release ? tf.tidy(f) : f());
    bind(this.graph.inputIds[0], x);
    if (!opts.override) live.add(this.graph.inputIds[0]);
    let logits: tf.Tensor | undefined;
    const exec = (g: Graph) => {
      for (const s of g.steps) {
        // a convolution folded into its batch normalization is computed there, unless it is asked for itself
        if (s.foldedInto && !opts.keep.has(s.layer.name) && opts.override?.layer !== s.layer.name && s.layer.name !== this.splitActivationOf) continue;
        const folded = s.foldFrom && !values.has(s.inputIds[0]) ? s.foldFrom : undefined;
        const source = folded ?? s;
        const ins = source.inputIds.map((id) => values.get(id));
        if (ins.some((t) => t === undefined)) continue;
        if (s.inner) {
          s.inner.inputIds.forEach((id, i) => {
            bind(id, ins[i]!);
            if (live.has(s.inputIds[i])) live.add(id);
          });
          exec(s.inner);
          s.outputIds.forEach((id, i) => {
            const innerId = s.inner!.outputIds[i];
            bind(id, values.get(innerId)!);
            if (live.has(innerId)) live.add(id);
          });
          continue;
        }
        const name = s.layer.name;
        let outs: tf.Tensor[];
        const isOverride = opts.override?.layer === name;
        const isLive = isOverride || source.inputIds.some((id) => live.has(id));
        if (isOverride) {
          outs = [opts.override!.value];
        } else if (!isLive && opts.reuse && s.outputIds.every((id) => opts.reuse!.has(id))) {
          outs = s.outputIds.map((id) => opts.reuse!.get(id)!);
        } else if (folded) {
          outs = call(() => [foldedCall(folded.layer, s.layer, ins[0]!)]);
        } else if (name === this.splitActivationOf) {
          const [pre, post] = call(() => {
            const p = callLayer(s.layer, ins as tf.Tensor[], s.callArgs, true) as tf.Tensor;
            return [p, activate(s.layer.activation!, p)];
          });
          logits = pre;
          held.add(pre);
          outs = [post];
        } else {
          outs = call(() => [callLayer(s.layer, ins as tf.Tensor[], s.callArgs, false)].flat());
        }
        s.outputIds.forEach((id, i) => {
          bind(id, outs[i]);
          if (isLive) live.add(id);
          opts.record?.set(id, outs[i]);
          if (id === this.logitsId) held.add(outs[i]);
        });
        if (opts.keep.has(name)) {
          kept.set(name, outs[0]);
          held.add(outs[0]);
        }
        consumed(source.inputIds);
      }
    };
    exec(this.graph);
    logits ??= values.get(this.logitsId);
    if (!logits) throw new Error('convlens: internal error: the model output was not computed');
    return { logits: logits as tf.Tensor2D, kept };
  }

  /**
   * How often each symbolic id is read by the steps a forward pass (no override) runs: the same
   * walk as run(), without computing anything.
   */
  private plannedReads(keep: ReadonlySet<string>): Map<number, number> {
    const reads = new Map<number, number>();
    const have = new Set<number>([this.graph.inputIds[0]]);
    const walk = (g: Graph) => {
      for (const s of g.steps) {
        if (s.foldedInto && !keep.has(s.layer.name) && s.layer.name !== this.splitActivationOf) continue;
        const source = s.foldFrom && !have.has(s.inputIds[0]) ? s.foldFrom : s;
        if (source.inputIds.some((id) => !have.has(id))) continue;
        if (s.inner) {
          s.inner.inputIds.forEach((id) => have.add(id));
          walk(s.inner);
          s.outputIds.forEach((id, i) => { if (have.has(s.inner!.outputIds[i])) have.add(id); });
          continue;
        }
        for (const id of source.inputIds) reads.set(id, (reads.get(id) ?? 0) + 1);
        for (const id of s.outputIds) have.add(id);
      }
    };
    walk(this.graph);
    return reads;
  }
}

function resolveAlias(alias: Map<number, number>, id: number): number {
  let cur = id;
  for (let i = 0; i < 100 && alias.has(cur) && alias.get(cur) !== cur; i++) cur = alias.get(cur)!;
  return cur;
}

function pair(v: number | number[] | undefined, fallback: number): [number, number] {
  if (v === undefined) return [fallback, fallback];
  if (typeof v === 'number') return [v, v];
  return [v[0], v[1] ?? v[0]];
}

/** Keras class names by role (adapter.ts LayerRole); a class not listed is 'other'. */
const KERAS_ROLES: Record<Exclude<LayerRole, 'bias' | 'other'>, readonly string[]> = {
  convolution: ['Conv1D', 'Conv2D', 'Conv3D', 'SeparableConv1D', 'SeparableConv2D', 'Conv2DTranspose', 'Conv3DTranspose'],
  'depthwise-convolution': ['DepthwiseConv1D', 'DepthwiseConv2D'],
  dense: ['Dense'],
  activation: ['Activation', 'ReLU', 'LeakyReLU', 'PReLU', 'ELU', 'ThresholdedReLU', 'Softmax'],
  normalization: ['BatchNormalization', 'LayerNormalization', 'GroupNormalization', 'UnitNormalization', 'Normalization'],
  'average-pooling': ['AveragePooling1D', 'AveragePooling2D', 'AveragePooling3D', 'GlobalAveragePooling1D', 'GlobalAveragePooling2D', 'GlobalAveragePooling3D'],
  'max-pooling': ['MaxPooling1D', 'MaxPooling2D', 'MaxPooling3D', 'GlobalMaxPooling1D', 'GlobalMaxPooling2D', 'GlobalMaxPooling3D'],
  merge: ['Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum', 'Concatenate', 'Dot'],
  reshape: ['Flatten', 'Reshape'],
  identity: ['Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'SpatialDropout3D', 'GaussianDropout', 'GaussianNoise', 'AlphaDropout', 'ActivityRegularization', 'Identity', ...AUGMENTATION],
  padding: ['ZeroPadding1D', 'ZeroPadding2D', 'ZeroPadding3D', 'Cropping1D', 'Cropping2D', 'Cropping3D'],
};
const KERAS_ROLE = new Map(Object.entries(KERAS_ROLES).flatMap(([role, classes]) => classes.map((c) => [c, role as LayerRole] as const)));

/** The layer's role from its Keras class; an Activation layer with the linear activation is the identity. */
function kerasRole(layer: LLayer): LayerRole {
  const cls = layer.getClassName();
  if (cls === 'Activation' && layer.activation?.getClassName() === 'linear') return 'identity';
  return KERAS_ROLE.get(cls) ?? 'other';
}

function convGeometry(layer: LLayer): ConvGeometry | undefined {
  const cls = layer.getClassName();
  if (!['Conv2D', 'DepthwiseConv2D', 'SeparableConv2D'].includes(cls) || !layer.kernelSize) return undefined;
  return {
    kernel: pair(layer.kernelSize, 1),
    strides: pair(layer.strides, 1),
    padding: layer.padding === 'same' ? 'same' : 'valid',
    dilation: pair(layer.dilationRate, 1),
  };
}

function poolGeometry(layer: LLayer): ConvGeometry | undefined {
  if (!['MaxPooling2D', 'AveragePooling2D'].includes(layer.getClassName()) || !layer.poolSize) return undefined;
  return {
    kernel: pair(layer.poolSize, 1),
    strides: pair(layer.strides ?? layer.poolSize, 1),
    padding: layer.padding === 'same' ? 'same' : 'valid',
    dilation: [1, 1],
  };
}

function padAmounts(layer: LLayer): [number, number, number, number] | undefined {
  const cls = layer.getClassName();
  const p = cls === 'ZeroPadding2D' ? layer.padding : cls === 'Cropping2D' ? layer.cropping : undefined;
  if (!Array.isArray(p) || p.length !== 2 || !Array.isArray(p[0]) || !Array.isArray(p[1])) return undefined;
  const [[t, b], [l, r]] = p as number[][];
  const signed = (v: number) => (cls === 'Cropping2D' ? 0 - v : v);
  return [signed(t), signed(b), signed(l), signed(r)];
}

const isRelu6 = (act: LLayer['activation']) => act?.getClassName() === 'relu6';

const FOLDABLE = new Set(['Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'Dense']);

/** A channels-last batch normalization: its axis is the last one of its input. */
function isChannelsLastBn(layer: LLayer, rank: number): boolean {
  if (layer.getClassName() !== 'BatchNormalization') return false;
  const axis = Array.isArray(layer.axis) ? (layer.axis.length === 1 ? layer.axis[0] : NaN) : (layer.axis ?? -1);
  return axis === -1 || axis === rank - 1;
}

/**
 * Marks each BatchNormalization whose only input is a linear, channels-last convolution or dense
 * layer that feeds nothing else, so the pair runs as one folded layer (foldedCall).
 */
function foldBatchNorms(graph: Graph): void {
  const consumers = new Map<number, number>();
  for (const s of graph.steps) for (const id of s.inputIds) consumers.set(id, (consumers.get(id) ?? 0) + 1);
  for (const id of graph.outputIds) consumers.set(id, (consumers.get(id) ?? 0) + 1);
  const producer = new Map<number, Step>();
  for (const s of graph.steps) for (const id of s.outputIds) producer.set(id, s);
  for (const bn of graph.steps) {
    if (bn.inner || bn.inputIds.length !== 1) continue;
    const conv = producer.get(bn.inputIds[0]);
    if (!conv || conv.inner || conv.outputIds.length !== 1 || consumers.get(conv.outputIds[0]) !== 1) continue;
    const cls = conv.layer.getClassName();
    const shape = (Array.isArray(conv.layer.outputShape[0]) ? conv.layer.outputShape[0] : conv.layer.outputShape) as (number | null)[];
    const linear = !conv.layer.activation || conv.layer.activation.getClassName() === 'linear';
    if (!FOLDABLE.has(cls) || !linear || conv.layer.dataFormat === 'channelsFirst' || !isChannelsLastBn(bn.layer, shape.length)) continue;
    if (cls === 'Conv2D' && !conv.layer.kernel) continue;
    conv.foldedInto = bn;
    bn.foldFrom = conv;
  }
}

/** Inference batch normalization as scale and shift vectors [C]. */
function bnAffine(bn: LLayer): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
  const mean = bn.movingMean!.read() as tf.Tensor1D;
  let scale = tf.rsqrt(tf.add(bn.movingVariance!.read(), bn.epsilon ?? 1e-3)) as tf.Tensor1D;
  if (bn.gamma) scale = tf.mul(scale, bn.gamma.read());
  let shift = tf.neg(tf.mul(mean, scale)) as tf.Tensor1D;
  if (bn.beta) shift = tf.add(shift, bn.beta.read());
  return { scale, shift };
}

/** conv (or dense) then batch normalization, as one layer with folded weights. */
function foldedCall(conv: LLayer, bn: LLayer, x: tf.Tensor): tf.Tensor {
  const { scale, shift } = bnAffine(bn);
  const cls = conv.getClassName();
  const bias = conv.useBias !== false && conv.bias ? tf.add(tf.mul(conv.bias.read(), scale), shift) : shift;
  const strides = pair(conv.strides, 1);
  const padding = conv.padding === 'same' ? 'same' : 'valid';
  const dilation = pair(conv.dilationRate, 1);
  let y: tf.Tensor;
  if (cls === 'Conv2D') {
    y = groupedConv2d(x as tf.Tensor4D, tf.mul(conv.kernel!.read(), scale) as tf.Tensor4D, strides, padding, dilation, conv.groups ?? 1);
  } else if (cls === 'DepthwiseConv2D') {
    const k = conv.depthwiseKernel!.read() as tf.Tensor4D;
    // tfjs-layers' DepthwiseConv2D ignores the dilation rate; so does this, to give the same values
    y = tf.depthwiseConv2d(x as tf.Tensor4D, tf.mul(k, tf.reshape(scale, [1, 1, k.shape[2], k.shape[3]])) as tf.Tensor4D, strides, padding, 'NHWC');
  } else if (cls === 'SeparableConv2D') {
    y = tf.separableConv2d(x as tf.Tensor4D, conv.depthwiseKernel!.read() as tf.Tensor4D, tf.mul(conv.pointwiseKernel!.read(), scale) as tf.Tensor4D, strides, padding, dilation, 'NHWC');
  } else {
    const kernel = tf.mul(conv.kernel!.read(), scale) as tf.Tensor2D;
    const flat = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x, [-1, x.shape[x.rank - 1]]) as tf.Tensor2D;
    y = tf.matMul(flat, kernel);
    if (x.rank !== 2) y = tf.reshape(y, [...x.shape.slice(0, -1), kernel.shape[1]]);
  }
  return tf.add(y, bias);
}

/** Applies a layer's activation; relu6 as the Relu6 op (see the class note). */
function activate(act: NonNullable<LLayer['activation']>, y: tf.Tensor): tf.Tensor {
  return isRelu6(act) ? tf.relu6(y) : act.apply(y);
}

/**
 * Calls a layer on concrete tensors. Conv2D and Dense are computed unfused (see the class note);
 * with `preActivation` the layer's activation is left out (used to expose logits).
 */
function callLayer(layer: LLayer, inputs: tf.Tensor[], callArgs: Record<string, unknown>, preActivation: boolean): tf.Tensor | tf.Tensor[] {
  const cls = layer.getClassName();
  const x = inputs[0];
  if (cls === 'Conv2D' && layer.kernel && x.rank === 4) {
    const channelsFirst = layer.dataFormat === 'channelsFirst';
    let y = groupedConv2d(
      (channelsFirst ? tf.transpose(x, [0, 2, 3, 1]) : x) as tf.Tensor4D,
      layer.kernel.read() as tf.Tensor4D,
      pair(layer.strides, 1),
      layer.padding === 'same' ? 'same' : 'valid',
      pair(layer.dilationRate, 1),
      layer.groups ?? 1,
    ) as tf.Tensor;
    if (layer.useBias !== false && layer.bias) y = tf.add(y, layer.bias.read());
    if (!preActivation && layer.activation) y = activate(layer.activation, y);
    return channelsFirst ? tf.transpose(y, [0, 3, 1, 2]) : y;
  }
  if (cls === 'Dense' && layer.kernel) {
    const kernel = layer.kernel.read() as tf.Tensor2D;
    const flat = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x, [-1, x.shape[x.rank - 1]]) as tf.Tensor2D;
    let y: tf.Tensor = tf.matMul(flat, kernel);
    if (layer.useBias !== false && layer.bias) y = tf.add(y, layer.bias.read());
    if (x.rank !== 2) y = tf.reshape(y, [...x.shape.slice(0, -1), kernel.shape[1]]);
    if (!preActivation && layer.activation) y = activate(layer.activation, y);
    return y;
  }
  if (!preActivation && inputs.length === 1 && ((cls === 'Activation' && isRelu6(layer.activation)) || (cls === 'ReLU' && layer.maxValue === 6))) {
    return tf.relu6(x);
  }
  if (!preActivation && inputs.length === 1 && layer.movingMean && isChannelsLastBn(layer, x.rank)) {
    const { scale, shift } = bnAffine(layer);
    return tf.add(tf.mul(x, scale), shift);
  }
  if (preActivation) throw new Error(`convlens: internal error: cannot split the activation of ${cls}`);
  return layer.call(inputs.length === 1 ? x : inputs, { ...callArgs, training: false });
}
