import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from '../../errors.ts';
import type { GraphAttr, GraphNodeDef } from '../graph-rewrite.ts';
import type { OnnxNode } from './decode.ts';

/**
 * How a graph tensor holds an ONNX value. ONNX images are NCHW, convlens's NHWC:
 *  - 'nhwc': the value is 4-D and the graph tensor is transpose(onnx, [0, 2, 3, 1]), so ONNX
 *    axis a is graph axis NHWC_AXIS[a] (N 0, C 3, H 1, W 2);
 *  - 'plain': the graph tensor is the ONNX value itself.
 */
export type Layout = 'nhwc' | 'plain';

/** ONNX (NCHW) axis -> graph (NHWC) axis for an 'nhwc' value. */
export const NHWC_AXIS = [0, 3, 1, 2] as const;
/** transpose(onnx, TO_NHWC) is the graph tensor of an 'nhwc' value; transpose(graph, TO_NCHW) gives ONNX's back. */
export const TO_NHWC = [0, 2, 3, 1];
export const TO_NCHW = [0, 3, 1, 2];

export const nhwcShape = (s: readonly number[]): number[] => [s[0], s[2], s[3], s[1]];
export const sizeOf = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/**
 * What the translator knows of one ONNX tensor.
 * `shape` is the ONNX shape with a dynamic batch counted as 1 (shapes are inferred op by op;
 * values that depend only on initializers and constants are computed at translation time).
 */
export interface Value {
  shape: number[];
  /** The value, in ONNX layout, when it is known at translation time (disposed by the translator). */
  const?: tf.Tensor;
  /** The graph tensor ("node" or "node:k") computing it, when it depends on the input. */
  ref?: string;
  layout: Layout;
  /** Dim 0 is the batch: a Reshape that keeps it can use -1 there so any batch size works. */
  batched: boolean;
}

export const dynamic = (v: Value | undefined): v is Value & { ref: string } => v?.ref !== undefined;

/** Reads a node's attributes with ONNX's defaults. */
export const attr = {
  int: (n: OnnxNode, name: string, def: number): number => n.attrs.get(name)?.i ?? def,
  float: (n: OnnxNode, name: string, def: number): number => n.attrs.get(name)?.f ?? def,
  str: (n: OnnxNode, name: string, def: string): string => n.attrs.get(name)?.s ?? def,
  ints: (n: OnnxNode, name: string): number[] | undefined => n.attrs.get(name)?.ints,
  floats: (n: OnnxNode, name: string): number[] | undefined => n.attrs.get(name)?.floats,
  has: (n: OnnxNode, name: string): boolean => n.attrs.has(name),
};

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** GraphDef attribute values in the JSON form model.json uses. */
export const gattr = {
  ints: (v: readonly number[]): GraphAttr => ({ list: { i: v.map(String) } }),
  str: (s: string): GraphAttr => ({ s: b64(s) }),
  bool: (b: boolean): GraphAttr => ({ b }),
  int: (i: number): GraphAttr => ({ i: String(i) }),
  float: (f: number): GraphAttr => ({ f }),
  float32: { type: 'DT_FLOAT' } as GraphAttr,
  int32: { type: 'DT_INT32' } as GraphAttr,
};

/**
 * tfjs reads "a:1" as output 1 of node a and a leading "^" as a control input: node names
 * must contain neither.
 */
export const sanitizeName = (s: string): string => s.replace(/:/g, '_').replace(/^\^/, '_');

/**
 * The state of one translation: the GraphDef nodes emitted so far, the constants they read, the
 * Value of every ONNX tensor, and the ONNX node being translated (helpers it adds are named
 * `<its name>/<what>`).
 */
export class Translator {
  readonly nodes: GraphNodeDef[] = [];
  /** Const node name -> value (becomes a weight of the GraphModel). */
  readonly consts = new Map<string, tf.Tensor>();
  /** Float constants the translation adds (pad fill values, clip bounds, ...): not model parameters. */
  readonly helperConsts = new Set<string>();
  readonly values = new Map<string, Value>();
  /** ONNX tensor or node name -> graph node name, for names that are not graph nodes themselves. */
  readonly aliases = new Map<string, string>();
  private readonly taken = new Set<string>();
  private readonly reserved = new Set<string>();
  private readonly owned: tf.Tensor[] = [];
  private readonly converted = new Map<string, string>();
  /** The ONNX node being translated, and its graph name. */
  node!: OnnxNode;
  name = '';

  constructor(readonly opset: number) {}

  /** Graph names of ONNX nodes, claimed by the node that produces each one's first output. */
  reserve(name: string): void {
    this.reserved.add(name);
  }

  begin(node: OnnxNode, name: string): void {
    this.node = node;
    this.name = name;
  }

  /** A node name not used yet (and not reserved for another ONNX node): base, base_1, ... */
  fresh(base: string): string {
    let name = base;
    for (let k = 1; this.taken.has(name) || (this.reserved.has(name) && name !== this.name); k++) name = `${base}_${k}`;
    this.taken.add(name);
    return name;
  }

  /** Emits a node; `name` is made unique. Returns the name. */
  op(name: string, op: string, inputs: string[], attrs: Record<string, GraphAttr> = {}): string {
    const unique = this.fresh(name);
    this.nodes.push({ name: unique, op, input: inputs, attr: attrs });
    return unique;
  }

  /** Emits the node that carries the current ONNX node's name. */
  main(op: string, inputs: string[], attrs: Record<string, GraphAttr> = {}): string {
    return this.op(this.name, op, inputs, attrs);
  }

  /** A helper node of the current ONNX node: `<name>/<what>`. */
  helper(what: string, op: string, inputs: string[], attrs: Record<string, GraphAttr> = {}): string {
    return this.op(`${this.name}/${what}`, op, inputs, attrs);
  }

  /** Keeps a tensor until the translation is disposed (also out of the tf.tidy each node is translated in). */
  own<T extends tf.Tensor>(t: T): T {
    this.owned.push(tf.keep(t));
    return t;
  }

  /**
   * A Const node `<current node>/<what>` holding t (float32 or int32). `helper`: a float
   * constant the translation adds, not a model parameter.
   */
  constant(what: string, t: tf.Tensor, helper = false): string {
    const name = this.fresh(`${this.name}/${what}`);
    const value = this.own(t.dtype === 'float32' || t.dtype === 'int32' ? t.clone() : tf.cast(t, 'int32'));
    const dtype = value.dtype === 'float32' ? 'DT_FLOAT' : 'DT_INT32';
    this.nodes.push({
      name, op: 'Const',
      attr: { value: { tensor: { dtype, tensorShape: { dim: value.shape.map((d) => ({ size: String(d) })) } } }, dtype: { type: dtype } },
    });
    this.consts.set(name, value);
    if (helper && value.dtype === 'float32') this.helperConsts.add(name);
    return name;
  }

  ints(what: string, values: readonly number[], shape: number[] = [values.length]): string {
    return this.constant(what, tf.tensor(values as number[], shape, 'int32'));
  }

  scalar(what: string, v: number): string {
    return this.constant(what, tf.scalar(v, 'float32'), true);
  }

  /** The Value of input i of the current node (undefined when absent or ''). */
  input(i: number): Value | undefined {
    const name = this.node.input[i];
    if (!name) return undefined;
    const v = this.values.get(name);
    if (!v) throw this.error(`reads "${name}", which no earlier node produces`);
    return v;
  }

  /** Input i, which must be present. */
  need(i: number): Value {
    const v = this.input(i);
    if (!v) throw this.error(`has no input ${i}`);
    return v;
  }

  /** Input i as a value known at translation time (undefined when absent); refuses a computed one. */
  constInput(i: number, what: string): tf.Tensor | undefined {
    const v = this.input(i);
    if (!v) return undefined;
    if (!v.const) throw this.error(`computes its ${what} from the input image; convlens needs it to be a constant`);
    return v.const;
  }

  /** Integer values of a constant input (undefined when absent). */
  constInts(i: number, what: string): number[] | undefined {
    const t = this.constInput(i, what);
    return t ? Array.from(t.dataSync(), Number) : undefined;
  }

  /** Sets output k of the current node. */
  set(k: number, v: Value): void {
    const name = this.node.output[k];
    if (!name) return;
    if (v.const) this.own(v.const);
    this.values.set(name, v);
  }

  /** Output k is input value `v` itself (Identity, Dropout, a no-op Cast ...). */
  alias(k: number, v: Value): void {
    const name = this.node.output[k];
    if (name) this.values.set(name, v);
  }

  /**
   * A graph tensor holding v in NHWC (4-D): an 'nhwc' value as it is; a 4-D 'plain' one
   * transposed (once per tensor); a constant broadcast to rank 4 (leading ones) and transposed.
   */
  nhwc(v: Value, what = 'value'): string {
    if (v.ref !== undefined) {
      if (v.layout === 'nhwc') return v.ref;
      if (v.shape.length !== 4) throw this.error(`needs a 4-D [N, C, H, W] tensor but gets [${v.shape.join(', ')}]`);
      const key = `nhwc:${v.ref}`;
      if (!this.converted.has(key)) this.converted.set(key, this.helper('to_nhwc', 'Transpose', [v.ref, this.ints('to_nhwc/perm', TO_NHWC)], { T: gattr.float32 }));
      return this.converted.get(key)!;
    }
    return this.constant(what, constNhwc(v.const!), v.const!.dtype === 'float32');
  }

  /** A graph tensor holding v in ONNX layout: an 'nhwc' value transposed back (once per tensor). */
  plain(v: Value, what = 'value'): string {
    if (v.ref !== undefined) {
      if (v.layout === 'plain') return v.ref;
      const key = `plain:${v.ref}`;
      if (!this.converted.has(key)) this.converted.set(key, this.helper('to_nchw', 'Transpose', [v.ref, this.ints('to_nchw/perm', TO_NCHW)], { T: gattr.float32 }));
      return this.converted.get(key)!;
    }
    return this.constant(what, v.const!, v.const!.dtype === 'float32');
  }

  /** v in the given layout. */
  as(v: Value, layout: Layout, what = 'value'): string {
    return layout === 'nhwc' ? this.nhwc(v, what) : this.plain(v, what);
  }

  error(what: string, hint?: string): ConvlensError {
    return new ConvlensError(`ONNX node "${this.node.name || this.name}" (${this.node.opType}, opset ${this.opset}) ${what}`, {
      hint: hint ?? 'Export the model without this construct (or with an equivalent one), or report the node so convlens can learn it.',
    });
  }

  dispose(): void {
    tf.dispose(this.owned);
    this.owned.length = 0;
  }
}

/** A constant of ONNX shape s (rank <= 4) broadcast to rank 4 and put in NHWC; a single value stays a scalar. */
export function constNhwc(t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    if (t.size === 1) return tf.reshape(t, []);
    if (t.rank > 4) throw new Error(`constant of rank ${t.rank} cannot meet an NHWC tensor`);
    const r4 = tf.reshape(t, [...Array(4 - t.rank).fill(1), ...t.shape]);
    return tf.transpose(r4, TO_NHWC);
  });
}

/** ONNX multidirectional broadcasting of two shapes (numpy rules). */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const x = a[a.length - n + k] ?? 1;
    const y = b[b.length - n + k] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** An axis in [0, rank) from ONNX's [-rank, rank). */
export const normAxis = (a: number, rank: number): number => (a < 0 ? a + rank : a);
