import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from '../errors.ts';

/**
 * What the TensorFlow.js converter writes from Keras 2 but tfjs-layers 4.x cannot read, mended
 * before deserializing (`repairKerasTopology`), and the Keras layers CNNs contain that tfjs lacks,
 * registered here as tfjs layer classes:
 *  - `TFOpLambda` / `SlicingOpLambda` (a TensorFlow function called on Keras tensors, e.g. the
 *    hard-swish of MobileNetV3: `tf.nn.relu6(x + 3) * (1/6) * x`), for the functions in TF_OPS;
 *  - `Normalization` (EfficientNet's input standardisation), with its mean and variance given in
 *    the config or stored as weights;
 *  - `Subtract`, `LayerScale` (ConvNeXt), and the augmentation layers, which are the identity at
 *    inference (RandomFlip, RandomRotation, ...);
 *  - `Conv2D` with `groups` > 1 (RegNet, ConvNeXt's depthwise convolutions), which tfjs-layers'
 *    Conv2D ignores (groupedConv2d).
 * A layer that truly cannot run (a Python `Lambda`, a grouped convolution) is refused before
 * loading, one line per layer, naming the way out.
 */

// ---- topology repair -------------------------------------------------------------------------

/** Keras layer config as model.json holds it (Python key names). */
interface KerasLayer {
  class_name: string;
  name?: string;
  config: Record<string, unknown>;
  inbound_nodes?: unknown[];
}

type InboundEntry = [string, number, number, Record<string, unknown>?];

/** A tensor reference in a Keras 2 call's keyword arguments: [layer name, node index, tensor index]. */
function isTensorRef(v: unknown, names: ReadonlySet<string>): v is [string, number, number] {
  return Array.isArray(v) && v.length === 3 && typeof v[0] === 'string' && names.has(v[0]) && Number.isInteger(v[1]) && Number.isInteger(v[2]);
}

const isEntry = (v: unknown): v is InboundEntry => Array.isArray(v) && typeof v[0] === 'string' && typeof v[1] === 'number';

/** Spec of a TFOpLambda after repair: the function, how many inputs its first argument takes, the other arguments. */
export interface TfOpSpec {
  fn: string;
  /** The first argument is a list of the first `first` inputs (tf.concat), else the first input alone. */
  list: boolean;
  first: number;
  /** Keyword arguments; a tensor argument is {input: k}, the k-th input of the layer. */
  kwargs: Record<string, unknown>;
}

const CONV_WITH_KERNEL_KEYS = new Set(['SeparableConv2D', 'SeparableConvolution2D']);
/** Keras augmentation layers, the identity at inference. */
export const AUGMENTATION = ['RandomFlip', 'RandomRotation', 'RandomZoom', 'RandomTranslation', 'RandomContrast', 'RandomBrightness', 'RandomHeight'];
const NEVER = new Map<string, string>([
  ['Lambda', 'a Lambda layer holds Python code, which no converter carries into model.json'],
  ['RandomCrop', 'RandomCrop resizes and crops at inference in ways TensorFlow.js layers do not reproduce'],
]);

/**
 * Mends a Keras 2 model.json topology (Python key names, as written by the converter) in place of
 * a copy: the SeparableConv2D `kernel_*` keys tfjs refuses are dropped; TFOpLambda / SlicingOpLambda
 * nodes get every tensor they read as an inbound input and their arguments as one spec; activation
 * names tfjs knows by another name are renamed. Throws, one line per layer, for layers that cannot
 * be supported. Nested models are mended too.
 */
export function repairKerasModel(artifacts: tf.io.ModelArtifacts): tf.io.ModelArtifacts {
  const modelTopology = repairKerasTopology(artifacts.modelTopology);
  return { ...artifacts, modelTopology, weightSpecs: repairWeightNames(modelTopology, artifacts.weightSpecs ?? []) };
}

/**
 * Keras 2 saves the weights an adapted Normalization layer holds without the layer's name
 * (`mean`, `variance`, `count`, then `mean_1`, ...), where tfjs looks for `<layer>/mean`. The
 * converter lists weights by layer name, so the bare groups are given, in order, to the
 * Normalization layers without a config mean, sorted by name.
 */
function repairWeightNames(topology: object, specs: tf.io.WeightsManifestEntry[]): tf.io.WeightsManifestEntry[] {
  const owners: string[] = [];
  const visit = (config: { layers?: KerasLayer[] } | undefined) => {
    for (const l of config?.layers ?? []) {
      if (['Functional', 'Model', 'Sequential'].includes(l.class_name)) visit(l.config as { layers?: KerasLayer[] });
      if (l.class_name === 'Normalization' && l.config.mean == null) owners.push(l.name ?? String(l.config.name));
    }
  };
  visit((topology as { model_config?: { config?: { layers?: KerasLayer[] } } }).model_config?.config);
  owners.sort();
  const bare = /^(mean|variance|count)(_\d+)?$/;
  let group = -1;
  let seen = new Set<string>();
  return specs.map((w) => {
    const m = bare.exec(w.name);
    if (!m || owners.length === 0) return w;
    if (group < 0 || seen.has(m[1])) { group++; seen = new Set(); }
    seen.add(m[1]);
    const owner = owners[group];
    return owner ? { ...w, name: `${owner}/${m[1]}` } : w;
  });
}

function repairKerasTopology(topology: unknown): object {
  const copy = structuredClone(topology) as { model_config?: { class_name?: string; config?: { layers?: KerasLayer[] } }; keras_version?: string };
  const problems: string[] = [];
  const known = knownLayerClasses();
  if (typeof copy.keras_version === 'string' && copy.keras_version.startsWith('3')) {
    throw new ConvlensError(`the LayersModel was written from Keras ${copy.keras_version}, whose format TensorFlow.js layers cannot read`, {
      hint: 'Export a SavedModel with model.export("saved_model") and convert it with tensorflowjs_converter --input_format=tf_saved_model to a GraphModel (README: Supported models).',
    });
  }
  const visit = (config: { layers?: KerasLayer[] } | undefined) => {
    const layers = config?.layers ?? [];
    const names = new Set(layers.map((l) => l.name ?? (l.config.name as string)));
    for (const layer of layers) {
      const name = layer.name ?? String(layer.config.name);
      const cls = layer.class_name;
      if (['Functional', 'Model', 'Sequential'].includes(cls)) visit(layer.config as { layers?: KerasLayer[] });
      const never = NEVER.get(cls);
      if (never) problems.push(`layer "${name}" (${cls}): ${never}`);
      else if (!known.has(cls) && cls !== 'TFOpLambda' && cls !== 'SlicingOpLambda') problems.push(`layer "${name}" (${cls}): a layer class TensorFlow.js layers does not have`);
      if (CONV_WITH_KERNEL_KEYS.has(cls)) {
        for (const k of ['kernel_initializer', 'kernel_regularizer', 'kernel_constraint']) delete layer.config[k];
      }
      const groups = layer.config.groups;
      if (typeof groups === 'number' && groups !== 1 && cls !== 'Conv2D') problems.push(`layer "${name}" (${cls}): a grouped convolution (groups: ${groups}), which TensorFlow.js has no op for`);
      if (typeof layer.config.activation === 'string') layer.config.activation = ACTIVATION_ALIASES[layer.config.activation] ?? layer.config.activation;
      if (cls === 'TFOpLambda' || cls === 'SlicingOpLambda') {
        const fn = String(layer.config.function ?? '');
        if (!TF_OPS[fn]) {
          problems.push(`layer "${name}" (${cls}): the TensorFlow function tf.${fn}, which convlens does not know (it knows ${Object.keys(TF_OPS).length}: tf.${Object.keys(TF_OPS).slice(0, 6).join(', tf.')}, ...)`);
          continue;
        }
        layer.inbound_nodes = (layer.inbound_nodes ?? []).map((node) => {
          const { entries, spec } = opNode(fn, node, names);
          layer.config.convlens_spec = Buffer.from(JSON.stringify(spec)).toString('base64');
          return entries;
        });
        layer.class_name = 'TFOpLambda';
      }
    }
  };
  visit(copy.model_config?.config);
  if (problems.length) {
    throw new ConvlensError(`the LayersModel has ${problems.length === 1 ? 'a layer' : `${problems.length} layers`} TensorFlow.js layers cannot run:\n  ${problems.join('\n  ')}`, {
      hint: 'Convert the SavedModel to a GraphModel instead (tensorflowjs_converter --input_format=tf_saved_model), which runs TensorFlow ops rather than Keras layers; or rebuild the model without these layers.',
    });
  }
  return copy;
}

/**
 * One call of a TFOpLambda: Keras 2 writes the tensors of the first argument as the node's
 * entries (a single entry, or a list for tf.concat) and every other argument as a keyword
 * argument of each entry, tensors as [layer, node, index] references. Returns entries for all
 * tensors (first argument, then keyword tensors) and the spec that maps them back.
 */
function opNode(fn: string, node: unknown, names: ReadonlySet<string>): { entries: InboundEntry[]; spec: TfOpSpec } {
  const list = !isEntry(node);
  const first = (list ? (node as unknown[]) : [node]).filter(isEntry);
  const rawKwargs = { ...(first[0]?.[3] ?? {}) };
  delete rawKwargs.name;
  const entries: InboundEntry[] = first.map((e) => [e[0], e[1], e[2], {}]);
  const kwargs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rawKwargs)) {
    if (isTensorRef(v, names)) {
      kwargs[k] = { input: entries.length };
      entries.push([v[0], v[1], v[2], {}]);
    } else {
      kwargs[k] = v;
    }
  }
  return { entries, spec: { fn, list: list && fn !== '__operators__.getitem', first: first.length, kwargs } };
}

/** Keras activation names that tfjs knows under another name (after its snake -> camel case). */
const ACTIVATION_ALIASES: Record<string, string> = { silu: 'swish' };

// ---- TensorFlow functions of TFOpLambda --------------------------------------------------------

type OpFn = (x: tf.Tensor | tf.Tensor[], kw: Record<string, unknown>) => tf.Tensor;

const one = (x: tf.Tensor | tf.Tensor[]) => (Array.isArray(x) ? x[0] : x);
const num = (v: unknown, fallback: number) => (typeof v === 'number' ? v : fallback);
const operand = (v: unknown): tf.Tensor | number => (v instanceof tf.Tensor ? v : typeof v === 'number' ? v : tf.tensor(v as number[]));
const axes = (v: unknown): number | number[] | undefined => (v === null || v === undefined ? undefined : (v as number | number[]));
const binary = (f: (a: tf.Tensor, b: tf.Tensor | number) => tf.Tensor, key = 'y'): OpFn => (x, kw) => f(one(x), operand(kw[key]));

/** TensorFlow functions by their Keras 2 name (`function` in the TFOpLambda config). */
const TF_OPS: Record<string, OpFn> = {
  '__operators__.add': binary((a, b) => tf.add(a, b)),
  'math.add': binary((a, b) => tf.add(a, b)),
  '__operators__.sub': binary((a, b) => tf.sub(a, b)),
  'math.subtract': binary((a, b) => tf.sub(a, b)),
  'math.multiply': binary((a, b) => tf.mul(a, b)),
  'math.truediv': binary((a, b) => tf.div(a, b)),
  'math.divide': binary((a, b) => tf.div(a, b)),
  'math.maximum': binary((a, b) => tf.maximum(a, b)),
  'math.minimum': binary((a, b) => tf.minimum(a, b)),
  'math.pow': binary((a, b) => tf.pow(a, b)),
  'math.negative': (x) => tf.neg(one(x)),
  'math.abs': (x) => tf.abs(one(x)),
  'math.square': (x) => tf.square(one(x)),
  'math.sqrt': (x) => tf.sqrt(one(x)),
  'math.rsqrt': (x) => tf.rsqrt(one(x)),
  'math.exp': (x) => tf.exp(one(x)),
  'math.log': (x) => tf.log(one(x)),
  'math.sigmoid': (x) => tf.sigmoid(one(x)),
  'nn.sigmoid': (x) => tf.sigmoid(one(x)),
  'math.tanh': (x) => tf.tanh(one(x)),
  'nn.tanh': (x) => tf.tanh(one(x)),
  'math.softplus': (x) => tf.softplus(one(x)),
  'nn.relu': (x) => tf.relu(one(x)),
  'nn.relu6': (x) => tf.relu6(one(x)),
  'nn.elu': (x) => tf.elu(one(x)),
  'nn.selu': (x) => tf.selu(one(x)),
  'nn.leaky_relu': (x, kw) => tf.leakyRelu(one(x), num(kw.alpha, 0.2)),
  'nn.silu': (x) => tf.mul(one(x), tf.sigmoid(one(x))),
  'nn.swish': (x) => tf.mul(one(x), tf.sigmoid(one(x))),
  'nn.softmax': (x, kw) => tf.softmax(one(x), num(kw.axis, -1)),
  'clip_by_value': (x, kw) => tf.clipByValue(one(x), num(kw.clip_value_min, -Infinity), num(kw.clip_value_max, Infinity)),
  'identity': (x) => tf.clone(one(x)),
  'cast': (x) => tf.cast(one(x), 'float32'),
  'reshape': (x, kw) => tf.reshape(one(x), kw.shape as number[]),
  'transpose': (x, kw) => tf.transpose(one(x), axes(kw.perm) as number[] | undefined),
  'compat.v1.transpose': (x, kw) => tf.transpose(one(x), axes(kw.perm) as number[] | undefined),
  'expand_dims': (x, kw) => tf.expandDims(one(x), num(kw.axis, 0)),
  'squeeze': (x, kw) => tf.squeeze(one(x), axes(kw.axis) as number[] | undefined),
  'concat': (x, kw) => tf.concat(Array.isArray(x) ? x : [x], num(kw.axis, 0)),
  'math.reduce_mean': (x, kw) => tf.mean(one(x), axes(kw.axis), kw.keepdims === true),
  'reduce_mean': (x, kw) => tf.mean(one(x), axes(kw.axis), kw.keepdims === true),
  'math.reduce_sum': (x, kw) => tf.sum(one(x), axes(kw.axis), kw.keepdims === true),
  'math.reduce_max': (x, kw) => tf.max(one(x), axes(kw.axis), kw.keepdims === true),
  'math.reduce_min': (x, kw) => tf.min(one(x), axes(kw.axis), kw.keepdims === true),
  'nn.bias_add': binary((a, b) => tf.add(a, b), 'bias'),
  'image.resize': (x, kw) => {
    const size = kw.size as [number, number];
    return kw.method === 'nearest' ? tf.image.resizeNearestNeighbor(one(x) as tf.Tensor4D, size) : tf.image.resizeBilinear(one(x) as tf.Tensor4D, size, false, true);
  },
  '__operators__.getitem': (x, kw) => getItem(one(x), kw.slice_spec),
};

/**
 * x[slice_spec] for the slice specs Keras 2 writes: per axis {start, stop, step} (step 1 or
 * null), an integer (the axis is dropped), or "..." / Ellipsis written as a string.
 */
function getItem(x: tf.Tensor, spec: unknown): tf.Tensor {
  const items = Array.isArray(spec) ? spec : [spec];
  const begin: number[] = [];
  const size: number[] = [];
  const drop: number[] = [];
  let axis = 0;
  for (const item of items) {
    if (item === '...' || item === 'Ellipsis') {
      const rest = items.length - 1 - items.indexOf(item);
      while (axis < x.rank - rest) { begin.push(0); size.push(-1); axis++; }
      continue;
    }
    const dim = x.shape[axis];
    if (typeof item === 'number') {
      const i = item < 0 ? dim + item : item;
      begin.push(i); size.push(1); drop.push(axis);
    } else {
      const s = (item ?? {}) as { start?: number | null; stop?: number | null; step?: number | null };
      if (s.step != null && s.step !== 1) {
        throw new ConvlensError(`the LayersModel slices a tensor with step ${s.step} in a TFOpLambda / SlicingOpLambda layer, which convlens cannot run`, {
          hint: 'Convert the SavedModel to a GraphModel instead (tensorflowjs_converter --input_format=tf_saved_model), or rebuild the model without the strided slice.',
        });
      }
      const start = s.start == null ? 0 : s.start < 0 ? dim + s.start : Math.min(s.start, dim);
      const stop = s.stop == null ? dim : s.stop < 0 ? dim + s.stop : Math.min(s.stop, dim);
      begin.push(start); size.push(Math.max(0, stop - start));
    }
    axis++;
  }
  while (axis < x.rank) { begin.push(0); size.push(-1); axis++; }
  const sliced = tf.slice(x, begin, size);
  return drop.length ? tf.squeeze(sliced, drop) : sliced;
}

// ---- layer classes --------------------------------------------------------------------------

type LayerArgs = ConstructorParameters<typeof tf.layers.Layer>[0] & Record<string, unknown>;
type Shape = (number | null)[];

/** Output shape by running the layer on zeros (batch 1 for the unknown batch size). */
function probeShape(layer: tf.layers.Layer, inputShape: Shape | Shape[]): Shape | Shape[] {
  const shapes = (Array.isArray(inputShape[0]) || inputShape.length === 0 ? inputShape : [inputShape]) as Shape[];
  const xs = shapes.map((s) => tf.zeros(s.map((d) => d ?? 1)));
  try {
    const y = layer.call(xs.length === 1 ? xs[0] : xs, {}) as tf.Tensor | tf.Tensor[];
    const ys = Array.isArray(y) ? y : [y];
    const out = ys.map((t): Shape => t.shape.map((d, i) => (i === 0 && shapes[0][0] === null ? null : d)));
    tf.dispose(ys);
    return Array.isArray(y) ? out : out[0];
  } finally {
    tf.dispose(xs);
  }
}

class TFOpLambda extends tf.layers.Layer {
  static className = 'TFOpLambda';
  private readonly spec: TfOpSpec;
  constructor(args: LayerArgs) {
    super(args);
    const encoded = args.convlensSpec as string | undefined;
    if (!encoded) throw new Error('convlens: TFOpLambda without a repaired spec (load through loadModel)');
    this.spec = JSON.parse(Buffer.from(encoded, 'base64').toString()) as TfOpSpec;
  }
  computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return probeShape(this, inputShape);
  }
  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const xs = Array.isArray(inputs) ? inputs : [inputs];
    const kw: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(this.spec.kwargs)) {
      kw[k] = v && typeof v === 'object' && 'input' in (v as object) ? xs[(v as { input: number }).input] : v;
    }
    const first = this.spec.list ? xs.slice(0, this.spec.first) : xs[0];
    return tf.tidy(() => TF_OPS[this.spec.fn](first, kw));
  }
  getConfig() {
    return { ...super.getConfig(), convlensSpec: Buffer.from(JSON.stringify(this.spec)).toString('base64') };
  }
}

/**
 * Keras' Normalization: y = (x - mean) / max(sqrt(var), 1e-7), or x * max(sqrt(var), 1e-7) + mean
 * with `invert`; mean and variance broadcast along `axis` (the kept axes), from the config or from
 * the weights `mean`, `variance` (and `count`, unused) that `adapt` leaves.
 */
class Normalization extends tf.layers.Layer {
  static className = 'Normalization';
  private readonly axis: number[];
  private readonly invert: boolean;
  private readonly given?: { mean: number[]; variance: number[] };
  private mean?: tf.LayerVariable;
  private variance?: tf.LayerVariable;
  constructor(args: LayerArgs) {
    super(args);
    const a = args.axis;
    this.axis = a === null || a === undefined ? [-1] : Array.isArray(a) ? (a as number[]) : [a as number];
    this.invert = args.invert === true;
    if (args.mean != null && args.variance != null) {
      const arr = (v: unknown) => (Array.isArray(v) ? (v as number[]).flat(8) : [v as number]);
      this.given = { mean: arr(args.mean), variance: arr(args.variance) };
    }
  }
  private kept(rank: number): number[] {
    return this.axis.map((d) => (d < 0 ? rank + d : d));
  }
  build(inputShape: Shape | Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    if (!this.given) {
      const dims = this.kept(shape.length).map((d) => shape[d] ?? 1);
      this.mean = this.addWeight('mean', dims, 'float32', tf.initializers.zeros(), undefined, false);
      this.variance = this.addWeight('variance', dims, 'float32', tf.initializers.ones(), undefined, false);
      this.addWeight('count', [], 'int32', tf.initializers.zeros(), undefined, false);
    }
    this.built = true;
  }
  computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }
  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = one(inputs);
    return tf.tidy(() => {
      const broadcast = x.shape.map(() => 1);
      for (const d of this.kept(x.rank)) broadcast[d] = x.shape[d];
      const mean = tf.reshape(this.given ? tf.tensor(this.given.mean) : this.mean!.read(), broadcast);
      const variance = tf.reshape(this.given ? tf.tensor(this.given.variance) : this.variance!.read(), broadcast);
      const std = tf.maximum(tf.sqrt(variance), 1e-7);
      return this.invert ? tf.add(tf.mul(x, std), mean) : tf.div(tf.sub(x, mean), std);
    });
  }
  getConfig() {
    return { ...super.getConfig(), axis: this.axis, invert: this.invert, ...(this.given ?? {}) };
  }
}

/** Keras' Subtract: inputs[0] - inputs[1]. */
class Subtract extends tf.layers.Layer {
  static className = 'Subtract';
  computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return (inputShape as Shape[])[0];
  }
  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [a, b] = inputs as tf.Tensor[];
    return tf.sub(a, b);
  }
}

/** ConvNeXt's LayerScale: x * gamma, gamma [projection_dim] (Touvron et al. 2021). */
class LayerScale extends tf.layers.Layer {
  static className = 'LayerScale';
  private readonly dim: number;
  private readonly init: number;
  private gamma?: tf.LayerVariable;
  constructor(args: LayerArgs) {
    super(args);
    this.dim = args.projectionDim as number;
    this.init = num(args.initValues, 1e-6);
  }
  build(): void {
    this.gamma = this.addWeight('gamma', [this.dim], 'float32', tf.initializers.constant({ value: this.init }));
    this.built = true;
  }
  computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }
  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.mul(one(inputs), this.gamma!.read());
  }
  getConfig() {
    return { ...super.getConfig(), projectionDim: this.dim, initValues: this.init };
  }
}

/**
 * A grouped 2-D convolution, NHWC: input channels and filters split into `groups` equal parts,
 * part g of the output convolves part g of the input with kernel[..., :, g-th block of filters]
 * (kernel [kh, kw, cin / groups, filters], as Keras stores it). Where every group is one input
 * channel it is a depthwise convolution with the kernel reshaped to [kh, kw, cin, filters / cin].
 */
export function groupedConv2d(x: tf.Tensor4D, kernel: tf.Tensor4D, strides: [number, number], padding: 'same' | 'valid', dilation: [number, number], groups: number): tf.Tensor4D {
  if (groups === 1) return tf.conv2d(x, kernel, strides, padding, 'NHWC', dilation);
  const cin = x.shape[3];
  const [kh, kw, perGroup, filters] = kernel.shape;
  if (perGroup * groups !== cin || filters % groups !== 0) {
    throw new ConvlensError(`a grouped convolution with ${groups} groups does not fit ${cin} input channels and ${filters} filters`, {
      hint: 'The model file contradicts itself (groups, kernel shape and input channels); convert the model again.',
    });
  }
  if (perGroup === 1) {
    return tf.depthwiseConv2d(x, tf.reshape(kernel, [kh, kw, cin, filters / cin]) as tf.Tensor4D, strides, padding, 'NHWC', dilation);
  }
  const xs = tf.split(x, groups, 3);
  const ks = tf.split(kernel, groups, 3);
  return tf.concat(xs.map((xg, g) => tf.conv2d(xg as tf.Tensor4D, ks[g] as tf.Tensor4D, strides, padding, 'NHWC', dilation)), 3) as tf.Tensor4D;
}

/** Conv2D with Keras' `groups`; with groups 1 it is tfjs-layers' own Conv2D, unchanged. */
function groupedConvLayer() {
  const Base = tf.layers.conv2d({ filters: 1, kernelSize: 1 }).constructor as new (args: LayerArgs) => tf.layers.Layer;
  return class Conv2D extends Base {
    static className = 'Conv2D';
    readonly groups: number;
    constructor(args: LayerArgs) {
      super(args);
      this.groups = typeof args.groups === 'number' ? args.groups : 1;
    }
    build(inputShape: Shape | Shape[]): void {
      if (this.groups === 1) return super.build(inputShape as never);
      const self = this as unknown as ConvFields;
      const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
      const cin = shape[shape.length - 1] as number;
      self.kernel = this.addWeight('kernel', [...self.kernelSize, cin / this.groups, self.filters], undefined, self.kernelInitializer, self.kernelRegularizer, true, self.kernelConstraint);
      if (self.useBias) self.bias = this.addWeight('bias', [self.filters], undefined, self.biasInitializer, self.biasRegularizer, true, self.biasConstraint);
      this.built = true;
    }
    call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[] {
      if (this.groups === 1) return super.call(inputs, kwargs);
      const self = this as unknown as ConvFields;
      return tf.tidy(() => {
        let y: tf.Tensor = groupedConv2d(one(inputs) as tf.Tensor4D, self.kernel.read() as tf.Tensor4D, pairOf(self.strides), self.padding === 'same' ? 'same' : 'valid', pairOf(self.dilationRate), this.groups);
        if (self.useBias && self.bias) y = tf.add(y, self.bias.read());
        return self.activation ? self.activation.apply(y) : y;
      });
    }
    getConfig() {
      return { ...super.getConfig(), groups: this.groups };
    }
  };
}

interface ConvFields {
  kernel: tf.LayerVariable;
  bias?: tf.LayerVariable;
  kernelSize: number[];
  filters: number;
  strides: number | number[];
  padding: string;
  dilationRate: number | number[];
  useBias: boolean;
  activation?: { apply(x: tf.Tensor): tf.Tensor };
  kernelInitializer: AddWeightArgs[3];
  kernelRegularizer?: AddWeightArgs[4];
  kernelConstraint?: AddWeightArgs[6];
  biasInitializer: AddWeightArgs[3];
  biasRegularizer?: AddWeightArgs[4];
  biasConstraint?: AddWeightArgs[6];
}

type AddWeightArgs = Parameters<tf.layers.Layer['addWeight']>;

const pairOf = (v: number | number[]): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1] ?? v[0]]);

/** Augmentation layers: the identity at inference. */
function identityLayer(className: string) {
  return class extends tf.layers.Layer {
    static className = className;
    computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
      return inputShape;
    }
    call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
      return tf.clone(one(inputs));
    }
  };
}

/**
 * Global pooling with Keras' `keepdims` ([n, 1, 1, c] instead of [n, c], as MobileNetV3's
 * squeeze-excite blocks use it), which tfjs-layers' own classes ignore. Replaces them under their
 * class names; without keepdims they behave exactly as before.
 */
function keepDimsPooling(make: (args: object) => tf.layers.Layer, className: string, reduce: (x: tf.Tensor) => tf.Tensor) {
  const Base = make({}).constructor as new (args: LayerArgs) => tf.layers.Layer;
  return class extends Base {
    static className = className;
    private readonly keep: boolean;
    constructor(args: LayerArgs) {
      super(args);
      this.keep = args.keepdims === true || args.keepDims === true;
    }
    computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
      const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
      return this.keep ? [s[0], 1, 1, s[3]] : super.computeOutputShape(inputShape as never) as Shape;
    }
    call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
      return this.keep ? tf.tidy(() => reduce(one(inputs))) : super.call(inputs, kwargs) as tf.Tensor;
    }
    getConfig() {
      return { ...super.getConfig(), keepdims: this.keep };
    }
  };
}

for (const cls of [
  groupedConvLayer(),
  keepDimsPooling((a) => tf.layers.globalAveragePooling2d(a), 'GlobalAveragePooling2D', (x) => tf.mean(x, [1, 2], true)),
  keepDimsPooling((a) => tf.layers.globalMaxPooling2d(a), 'GlobalMaxPooling2D', (x) => tf.max(x, [1, 2], true)),
]) tf.serialization.registerClass(cls as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);

const registered = new Set(Object.keys((tf.serialization.SerializationMap.getMap() as unknown as { classNameMap: Record<string, unknown> }).classNameMap));
for (const cls of [TFOpLambda, Normalization, Subtract, LayerScale, ...AUGMENTATION.map(identityLayer)]) {
  if (!registered.has(cls.className)) tf.serialization.registerClass(cls as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);
}

/** Layer classes tfjs-layers can deserialize now (its own and the ones registered here). */
export function knownLayerClasses(): ReadonlySet<string> {
  return new Set(Object.keys((tf.serialization.SerializationMap.getMap() as unknown as { classNameMap: Record<string, unknown> }).classNameMap));
}
