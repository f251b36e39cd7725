import * as tf from '@tensorflow/tfjs';
import { ConvlensError, nearest } from '../errors.ts';
import { headClassCount, headProbabilities, type Head } from './head.ts';

/** Convolution geometry of a layer, for receptive fields and filter views. */
export interface ConvGeometry {
  kernel: [number, number];
  strides: [number, number];
  padding: 'same' | 'valid';
  dilation: [number, number];
}

/**
 * What a layer does, in one vocabulary for every model format; each adapter assigns it from its
 * own (Keras class names; graph op names, which ONNX models are translated into). Methods ask for
 * roles, never for type names.
 *  - convolution: a kernel over a spatial window that mixes channels (Conv2D, grouped and
 *    separable convolutions);
 *  - depthwise-convolution: one kernel per input channel (DepthwiseConv2D);
 *  - dense: a matrix product with a weight matrix on the last axis (Dense, MatMul);
 *  - bias: adds a constant to a single input (a graph's BiasAdd, or Add of a weight);
 *  - activation: an elementwise nonlinearity, softmax included (ReLU, Sigmoid, Softmax...);
 *  - normalization: batch, layer or input normalization;
 *  - average-pooling / max-pooling: windowed or global (global when the output is 1x1 or [n, c];
 *    a graph's Mean / Max reductions count as pooling, so callers check the shapes);
 *  - merge: combines two or more activations (Add, Concatenate, Multiply...);
 *  - reshape: changes the shape, not the values or their order (Flatten, Reshape, Squeeze);
 *  - identity: passes its input through at inference (Dropout, noise, augmentation, a linear
 *    Activation);
 *  - padding: adds or crops rows and columns (ZeroPadding2D, Cropping2D, Pad);
 *  - other: anything else (Transpose, Slice, a scale by a constant, TFOpLambda...).
 */
export type LayerRole =
  | 'convolution' | 'depthwise-convolution' | 'dense' | 'bias' | 'activation' | 'normalization'
  | 'average-pooling' | 'max-pooling' | 'merge' | 'reshape' | 'identity' | 'padding' | 'other';

export interface LayerInfo {
  name: string;
  /** Display name: the Keras class name (Conv2D, Dense, ...) or, for a GraphModel, the op (Conv2D, Relu, ...). */
  type: string;
  role: LayerRole;
  /** Output shape with the batch dimension first (null). */
  outputShape: (number | null)[];
  params: number;
  /** Names of the layers feeding this one. */
  inputs: string[];
  conv?: ConvGeometry;
  /**
   * Window of a 2-D pooling layer (MaxPooling2D / AveragePooling2D; graph ops MaxPool / AvgPool),
   * dilation 1. Global pooling has none.
   */
  pool?: ConvGeometry;
  /**
   * Rows and columns a padding or cropping layer adds, [top, bottom, left, right] (negative:
   * removed): ZeroPadding2D, Cropping2D; graph ops Pad / PadV2 (constant padding).
   */
  pad?: [number, number, number, number];
}

/**
 * A target for a gradient: a scalar that is a sum over examples, so micro-batches can be
 * differentiated separately. `rows` are the example indices [start, end) of the micro-batch.
 */
export type Objective = (out: { logits: tf.Tensor2D; activations: Map<string, tf.Tensor> }, rows: [number, number]) => tf.Scalar;

/** sum_i sum_k W[i,k] * logits[i,k]: a class score per example (one-hot rows) or a contrast (+1/-1 rows). */
export function classScore(weights: tf.Tensor2D): Objective {
  return ({ logits }, [start, end]) => tf.sum(tf.mul(logits, weights.slice([start, 0], [end - start, -1])));
}

export interface GradientResult {
  /** d objective / d target, same shape as the target ([n,h,w,c] for the input or a conv layer). */
  grad: tf.Tensor;
  /** The target's value (the input itself, or the layer activation). */
  value: tf.Tensor;
  logits: tf.Tensor2D;
}

/**
 * The one interface every method uses; it hides LayersModel vs GraphModel.
 * Tensors are NHWC. Class scores ("logits") come before the model's output activation: where the
 * model ends in a softmax or sigmoid, the adapter stops before it; where it does not (e.g. Darknet
 * Tiny), the outputs are the scores. A binary head's one output z becomes two scores [-z, z]
 * (head.ts). No call computes weight gradients. The ReLU backward rule of `gradient` is not a
 * property of the model: relu-rules.ts `withReluRule` switches it for every model of the thread.
 */
export interface ModelAdapter {
  readonly format: 'layers-model' | 'graph-model';
  /** [height, width, channels] of one input image. */
  readonly inputShape: [number, number, number];
  /** What the output means (softmax, logits, binary, multi-label) and how probabilities follow. */
  readonly head: Head;
  /** Classes the scores and probabilities have (the output units; 2 for a binary head). */
  readonly numClasses: number;
  readonly layers: readonly LayerInfo[];
  /** Examples per backward pass (micro-batches of a gradient call). */
  readonly backwardBatch: number;
  /** Largest batch of one forward pass: a bigger batch given to `forward` runs in pieces. */
  readonly forwardBatch: number;
  /** Sets both batch limits (compute/memory.ts plans them from the memory budget). */
  limitBatches(limits: { forward: number; backward: number }): void;
  countParams(): number;
  /** The layer called `name`; an unknown name throws with the nearest names. */
  layer(name: string): LayerInfo;
  /**
   * The last layer whose output is spatial ([n,h,w,c] with h,w > 1); where that is a 1x1
   * convolution to one map per class (a NiN/Darknet head), the layer feeding it.
   */
  lastSpatialLayer(): LayerInfo;
  /** The first layer holding a 2-D convolution kernel. */
  firstConvLayer(): LayerInfo | undefined;
  /** Logits and the named activations, in one forward pass. */
  forward(x: tf.Tensor4D, layerNames?: readonly string[]): { logits: tf.Tensor2D; activations: Map<string, tf.Tensor> };
  /** Class probabilities as the head defines them: softmax(scores), or sigmoid per class. */
  probabilities(x: tf.Tensor4D): tf.Tensor2D;
  /**
   * Gradient of `objective` w.r.t. the input or a named layer's activation, micro-batched.
   * `layers` lists activations the objective reads (they are computed in the same pass).
   */
  gradient(x: tf.Tensor4D, objective: Objective, wrt: 'input' | string, layers?: readonly string[]): GradientResult;
  /** Weight tensors of a layer (kernel first, then bias), owned by the model: do not dispose. */
  weights(layerName: string): tf.Tensor[];
  /**
   * Runs fn with every weight of the named layers re-initialised by seeded draws from Keras'
   * default initializers (see `initialWeight`), as the model-parameter randomization test needs,
   * and always restores the exact original weights afterwards (the same buffers; also when fn
   * throws). A layer's draws depend only on (seed, layer name, weight index), so a cascade that
   * randomizes more and more layers keeps the layers randomized earlier at the same values.
   */
  withRandomizedLayers<T>(layerNames: readonly string[], seed: number, fn: () => T | Promise<T>): Promise<T>;
  dispose(): void;
}

/**
 * The re-initialised value of one weight, Keras' default initializer for it, by the weight's
 * name (the last path segment, without a `_N` suffix tfjs may add):
 *  - kernel, depthwise_kernel, pointwise_kernel, recurrent_kernel, embeddings: Glorot-uniform,
 *    U(-l, l) with l = sqrt(6 / (fan_in + fan_out)); for a kernel [..., in, out] the fans are
 *    in * r and out * r, r = the product of the leading (receptive field) dimensions;
 *  - gamma, moving_variance: ones; everything else (bias, beta, moving_mean, PReLU alpha): zeros.
 * Adebayo et al. re-initialise all weights of a layer (kernels from the layer's initializer
 * distribution); the constant parts follow Keras' defaults, so a re-initialised batch
 * normalization layer is the identity up to its epsilon.
 */
export function initialWeight(name: string, shape: readonly number[], seed: number): tf.Tensor {
  const base = (name.split('/').pop() ?? name).replace(/_\d+$/, '').replace(/:\d+$/, '');
  if (['kernel', 'depthwise_kernel', 'pointwise_kernel', 'recurrent_kernel', 'embeddings'].includes(base)) {
    const [fanIn, fanOut] = fans(shape);
    const limit = Math.sqrt(6 / Math.max(1, fanIn + fanOut));
    return tf.randomUniform([...shape], -limit, limit, 'float32', seed);
  }
  return ['gamma', 'moving_variance'].includes(base) ? tf.ones([...shape]) : tf.zeros([...shape]);
}

/** Keras' compute_fans (channels last). */
function fans(shape: readonly number[]): [number, number] {
  if (shape.length === 0) return [1, 1];
  if (shape.length === 1) return [shape[0], shape[0]];
  if (shape.length === 2) return [shape[0], shape[1]];
  const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  return [shape[shape.length - 2] * receptive, shape[shape.length - 1] * receptive];
}

/** A 32-bit seed per (seed, layer, weight index): FNV-1a of the three. */
export function weightSeed(seed: number, layer: string, index: number): number {
  let h = 0x811c9dc5;
  for (const ch of `${seed}\u0000${layer}\u0000${index}`) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Keeps the backward pass well inside the 4 GiB wasm heap (see the tfjs note): ~1 GiB budget. */
export function backwardBatchFor(layers: readonly LayerInfo[], inputShape: readonly number[]): number {
  const perExample = [inputShape, ...layers.map((l) => l.outputShape.slice(1))]
    .reduce((sum, s) => sum + s.reduce<number>((a, b) => a * (b ?? 1), 1), 0);
  const bytes = perExample * 4 * 4; // value, gradient and two temporaries per activation
  return Math.max(1, Math.min(64, Math.floor(2 ** 30 / Math.max(bytes, 1))));
}

function unknownLayerError(name: string, layers: readonly LayerInfo[]): ConvlensError {
  const names = layers.map((l) => l.name);
  const near = nearest(name, names, 3);
  return new ConvlensError(`no layer "${name}"; nearest: ${near.join(', ')}`, {
    hint: `The model has ${names.length} layers; \`convlens layers --config FILE\` lists them all.`,
  });
}

/** Shared by both adapters. */
export abstract class BaseAdapter {
  abstract readonly layers: readonly LayerInfo[];
  abstract readonly inputShape: [number, number, number];
  abstract readonly head: Head;
  abstract backwardBatch: number;
  forwardBatch = Number.POSITIVE_INFINITY;
  private byName?: Map<string, LayerInfo>;

  abstract forward(x: tf.Tensor4D, layerNames?: readonly string[]): { logits: tf.Tensor2D; activations: Map<string, tf.Tensor> };

  limitBatches(limits: { forward: number; backward: number }): void {
    this.forwardBatch = Math.max(1, limits.forward);
    this.backwardBatch = Math.max(1, limits.backward);
  }

  /**
   * `once` on pieces of at most `forwardBatch` examples, the logits and activations concatenated
   * along the batch axis (the same values as one pass: examples do not interact).
   */
  protected chunkedForward(x: tf.Tensor4D, once: (xb: tf.Tensor4D) => { logits: tf.Tensor2D; activations: Map<string, tf.Tensor> }): { logits: tf.Tensor2D; activations: Map<string, tf.Tensor> } {
    const n = x.shape[0];
    if (n <= this.forwardBatch) return once(x);
    const parts: { logits: tf.Tensor2D; activations: Map<string, tf.Tensor> }[] = [];
    try {
      for (let s = 0; s < n; s += this.forwardBatch) {
        const xb = tf.slice(x, [s, 0, 0, 0], [Math.min(this.forwardBatch, n - s), -1, -1, -1]);
        try {
          parts.push(once(xb));
        } finally {
          xb.dispose();
        }
      }
      const names = [...parts[0].activations.keys()];
      return {
        logits: tf.concat(parts.map((p) => p.logits), 0),
        activations: new Map(names.map((k) => [k, tf.concat(parts.map((p) => p.activations.get(k)!), 0)])),
      };
    } finally {
      for (const p of parts) tf.dispose([p.logits, ...p.activations.values()]);
    }
  }

  get numClasses(): number {
    return headClassCount(this.head);
  }

  probabilities(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => headProbabilities(this.head, this.forward(x).logits));
  }

  layer(name: string): LayerInfo {
    this.byName ??= new Map(this.layers.map((l) => [l.name, l]));
    const info = this.byName.get(name);
    if (!info) throw unknownLayerError(name, this.layers);
    return info;
  }

  lastSpatialLayer(): LayerInfo {
    const spatial = this.layers.filter((l) => l.outputShape.length === 4 && (l.outputShape[1] ?? 0) > 1 && (l.outputShape[2] ?? 0) > 1);
    let last = spatial.at(-1);
    // A 1x1 convolution to one map per class before global pooling (NiN / Darknet head) is the
    // classifier, not a feature layer: the default explanation layer is its input.
    const conv = last && this.producingConv(last);
    if (conv?.conv && conv.conv.kernel[0] === 1 && conv.conv.kernel[1] === 1 && conv.outputShape.at(-1) === this.head.units && conv.inputs.length === 1 && conv.inputs[0] !== 'input') {
      last = this.layer(conv.inputs[0]);
    }
    if (!last) throw new ConvlensError('the model has no layer with a spatial output ([batch, height, width, channels])', {
      hint: 'Grad-CAM and activation maps need a convolutional model with NHWC activations.',
    });
    return last;
  }

  /**
   * The convolution whose output `layer` is, stepping back over single-input layers of the same
   * shape without parameters of their own except a bias (a graph's BiasAdd and activation nodes).
   */
  protected producingConv(layer: LayerInfo): LayerInfo | undefined {
    let cur: LayerInfo | undefined = layer;
    for (let i = 0; cur && i < 8; i++) {
      if (cur.conv) return cur;
      if (cur.inputs.length !== 1 || cur.inputs[0] === 'input') return undefined;
      const prev = this.layer(cur.inputs[0]);
      const sameShape = prev.outputShape.length === cur.outputShape.length && prev.outputShape.every((d, k) => d === cur!.outputShape[k]);
      if (!sameShape || cur.params > (cur.outputShape.at(-1) ?? 0)) return undefined;
      cur = prev;
    }
    return undefined;
  }

  firstConvLayer(): LayerInfo | undefined {
    return this.layers.find((l) => l.conv !== undefined);
  }

  protected checkInput(x: tf.Tensor4D): void {
    const [h, w, c] = this.inputShape;
    const [, xh, xw, xc] = x.shape;
    if (xh !== h || xw !== w || xc !== c) {
      throw new ConvlensError(`the model expects ${h}x${w}x${c} images but got ${xh}x${xw}x${xc}`, {
        hint: 'Set input.size and input.channels in viz.yaml to the model input, or leave them out to use it.',
      });
    }
  }

  /** Runs `step` on micro-batches of x and concatenates the results along the batch axis. */
  protected microBatched(x: tf.Tensor4D, batch: number, step: (xb: tf.Tensor4D, rows: [number, number]) => GradientResult): GradientResult {
    const n = x.shape[0];
    if (n <= batch) return step(x, [0, n]);
    const parts: GradientResult[] = [];
    try {
      for (let s = 0; s < n; s += batch) {
        const e = Math.min(n, s + batch);
        const xb = tf.slice(x, [s, 0, 0, 0], [e - s, -1, -1, -1]);
        try {
          parts.push(step(xb, [s, e]));
        } finally {
          xb.dispose();
        }
      }
      return {
        grad: tf.concat(parts.map((p) => p.grad), 0),
        value: tf.concat(parts.map((p) => p.value), 0),
        logits: tf.concat(parts.map((p) => p.logits), 0),
      };
    } finally {
      for (const p of parts) tf.dispose([p.grad, p.value, p.logits]);
    }
  }
}
