import onnxProto from 'onnx-proto';
import { dirname, join, normalize, isAbsolute } from 'node:path';
import { ConvlensError } from '../../errors.ts';

const { onnx } = onnxProto;

/**
 * An ONNX model as plain objects: what the translator reads of a ModelProto, decoded with the
 * `onnx-proto` package (protobufjs code generated from onnx.proto). Integers that protobuf
 * stores as int64 are JS numbers here; tensor values are typed arrays.
 */
export interface OnnxModel {
  /** Opset of the default domain ('' / 'ai.onnx'). */
  opset: number;
  /** Every imported domain and its version. */
  domains: Map<string, number>;
  producer: string;
  nodes: OnnxNode[];
  initializers: Map<string, OnnxTensor>;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

export interface OnnxNode {
  name: string;
  opType: string;
  /** '' for the default domain (ai.onnx is normalised to ''). */
  domain: string;
  /** Input tensor names; '' marks an optional input left out. */
  input: string[];
  output: string[];
  attrs: Map<string, OnnxAttr>;
}

/** One attribute; only the field its type uses is set. */
export interface OnnxAttr {
  f?: number;
  i?: number;
  s?: string;
  t?: OnnxTensor;
  floats?: number[];
  ints?: number[];
  /** A subgraph (If, Loop, Scan): present only so the node can be refused. */
  graph?: true;
}

/**
 * A tensor's value. Floating types (float, double, float16, bfloat16) become float32; integer
 * types become int32, with int64 values clamped to the int32 range (slice ends such as INT64_MAX
 * stay "to the end"); bool becomes 'bool' (0/1 bytes).
 */
export interface OnnxTensor {
  name: string;
  dims: number[];
  dtype: 'float32' | 'int32' | 'bool';
  data: Float32Array | Int32Array | Uint8Array;
}

/** A graph input or output: element type and dims (a number, a symbolic name, or unknown). */
export interface OnnxValueInfo {
  name: string;
  elemType: number;
  dims: (number | string | undefined)[] | undefined;
}

/** Reads the bytes of a file or URL; the model and its external-data files go through it. */
export type ByteReader = (location: string) => Promise<Uint8Array>;

interface LongLike { toNumber(): number }
const num = (v: number | LongLike | string | null | undefined): number =>
  v == null ? 0 : typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : v.toNumber();

const I32_MIN = -2147483648;
const I32_MAX = 2147483647;
const clampI32 = (v: number) => (v > I32_MAX ? I32_MAX : v < I32_MIN ? I32_MIN : v);

const FLOAT_TYPES = new Set([1, 10, 11, 16]);
const INT_TYPES = new Set([2, 3, 4, 5, 6, 7, 12, 13]);
const TYPE_NAMES: Record<number, string> = {
  1: 'float', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool',
  10: 'float16', 11: 'double', 12: 'uint32', 13: 'uint64', 14: 'complex64', 15: 'complex128', 16: 'bfloat16',
};
export const onnxTypeName = (t: number): string => TYPE_NAMES[t] ?? `type ${t}`;

/**
 * Decodes an ONNX file: the ModelProto, and the values of every initializer, including those
 * stored outside the file (TensorProto.data_location = EXTERNAL: external_data keys `location`,
 * a path relative to the model's folder, `offset` and `length` in bytes; each file is read once).
 */
export async function decodeOnnxModel(bytes: Uint8Array, location: string, read: ByteReader): Promise<OnnxModel> {
  let proto: ReturnType<typeof onnx.ModelProto.decode>;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new ConvlensError(`${location} is not an ONNX model (${(err as Error).message})`, {
      hint: 'model.path must point at a .onnx file written by torch.onnx.export or another ONNX exporter.',
    });
  }
  const graph = proto.graph;
  if (!graph || !graph.node?.length) {
    throw new ConvlensError(`${location} holds no ONNX graph`, {
      hint: 'model.path must point at a .onnx file written by torch.onnx.export or another ONNX exporter.',
    });
  }
  const domains = new Map<string, number>();
  for (const o of proto.opsetImport ?? []) domains.set(normalDomain(o.domain ?? ''), num(o.version));
  const files = new Map<string, Promise<Uint8Array>>();
  const external = (name: string) => {
    if (!files.has(name)) files.set(name, read(resolveBeside(location, name)));
    return files.get(name)!;
  };
  const initializers = new Map<string, OnnxTensor>();
  for (const t of graph.initializer ?? []) initializers.set(t.name ?? '', await decodeTensor(t, location, external));
  if (graph.sparseInitializer?.length) {
    throw new ConvlensError(`${location} stores ${graph.sparseInitializer.length} weights as sparse initializers, which convlens does not read`, {
      hint: 'Export the model with dense weights.',
    });
  }
  const nodes: OnnxNode[] = [];
  for (const n of graph.node) {
    const attrs = new Map<string, OnnxAttr>();
    for (const a of n.attribute ?? []) attrs.set(a.name ?? '', await decodeAttr(a, location, external));
    nodes.push({
      name: n.name ?? '',
      opType: n.opType ?? '',
      domain: normalDomain(n.domain ?? ''),
      input: [...(n.input ?? [])],
      output: [...(n.output ?? [])],
      attrs,
    });
  }
  return {
    opset: domains.get('') ?? 1,
    domains,
    producer: [proto.producerName, proto.producerVersion].filter(Boolean).join(' '),
    nodes,
    initializers,
    inputs: (graph.input ?? []).map(valueInfo),
    outputs: (graph.output ?? []).map(valueInfo),
  };
}

const normalDomain = (d: string) => (d === 'ai.onnx' ? '' : d);

/** A path named in external_data, relative to the model file (a URL model: relative to its URL). */
function resolveBeside(location: string, name: string): string {
  if (/^https?:\/\//i.test(location)) return new URL(name, location).toString();
  return isAbsolute(name) ? normalize(name) : join(dirname(location), name);
}

function valueInfo(v: InstanceType<typeof onnx.ValueInfoProto> | { name?: string | null; type?: unknown }): OnnxValueInfo {
  const tt = (v.type as { tensorType?: { elemType?: number; shape?: { dim?: { dimValue?: number | LongLike | null; dimParam?: string | null }[] } | null } } | undefined)?.tensorType;
  const dims = tt?.shape?.dim?.map((d) => (d.dimValue != null && num(d.dimValue) > 0 ? num(d.dimValue) : d.dimParam || undefined));
  return { name: v.name ?? '', elemType: tt?.elemType ?? 0, dims };
}

async function decodeAttr(a: onnxProto.onnx.IAttributeProto, location: string, external: (name: string) => Promise<Uint8Array>): Promise<OnnxAttr> {
  const out: OnnxAttr = {};
  switch (a.type) {
    case 1: out.f = a.f ?? 0; break;
    case 2: out.i = num(a.i); break;
    case 3: out.s = new TextDecoder().decode(a.s ?? new Uint8Array()); break;
    case 4: out.t = await decodeTensor(a.t ?? {}, location, external); break;
    case 5: case 10: out.graph = true; break;
    case 6: out.floats = [...(a.floats ?? [])]; break;
    case 7: out.ints = (a.ints ?? []).map(num); break;
    default: break;
  }
  return out;
}

async function decodeTensor(t: onnxProto.onnx.ITensorProto, location: string, external: (name: string) => Promise<Uint8Array>): Promise<OnnxTensor> {
  const name = t.name ?? '';
  const dims = (t.dims ?? []).map(num);
  const type = t.dataType ?? 0;
  const size = dims.reduce((a, b) => a * b, 1);
  const refuse = (why: string) => new ConvlensError(`the ONNX weight "${name}" (${onnxTypeName(type)} [${dims.join(', ')}]) ${why}`, {
    hint: 'Export the model with float32 weights stored in the .onnx file or in external-data files beside it.',
  });
  if (t.segment) throw refuse('is stored in segments, which convlens does not read');
  let raw = t.rawData && t.rawData.length ? t.rawData : undefined;
  if (t.dataLocation === 1) {
    const entries = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const file = entries.get('location');
    if (!file) throw refuse('is marked as external data but names no location');
    const all = await external(file);
    const offset = Number(entries.get('offset') ?? 0);
    const length = entries.has('length') ? Number(entries.get('length')) : all.byteLength - offset;
    if (offset + length > all.byteLength) {
      throw new ConvlensError(`the external-data file "${file}" beside ${location} holds ${all.byteLength} bytes, but the weight "${name}" needs bytes ${offset} to ${offset + length}`, {
        hint: 'Copy the model folder again: every external-data file must sit beside the .onnx file, unmodified.',
      });
    }
    raw = all.subarray(offset, offset + length);
  }
  const elemBytes: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2 };
  if (raw && elemBytes[type] && raw.byteLength !== size * elemBytes[type]) {
    throw refuse(`holds ${raw.byteLength} bytes of data, not the ${size * elemBytes[type]} its shape needs`);
  }
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  if (FLOAT_TYPES.has(type)) {
    const data = new Float32Array(size);
    if (view) {
      for (let k = 0; k < size; k++) {
        data[k] = type === 1 ? view.getFloat32(4 * k, true)
          : type === 11 ? view.getFloat64(8 * k, true)
            : type === 10 ? half(view.getUint16(2 * k, true))
              : bfloat(view.getUint16(2 * k, true));
      }
    } else {
      const src: ArrayLike<number> = type === 1 ? t.floatData ?? [] : type === 11 ? t.doubleData ?? [] : t.int32Data ?? [];
      if (src.length !== size) throw refuse(`holds ${src.length} values, not the ${size} its shape needs`);
      for (let k = 0; k < size; k++) data[k] = type === 10 ? half(src[k]) : type === 16 ? bfloat(src[k]) : src[k];
    }
    return { name, dims, dtype: 'float32', data };
  }
  if (INT_TYPES.has(type) || type === 9) {
    const data = type === 9 ? new Uint8Array(size) : new Int32Array(size);
    if (view) {
      for (let k = 0; k < size; k++) {
        switch (type) {
          case 2: case 9: data[k] = view.getUint8(k); break;
          case 3: data[k] = view.getInt8(k); break;
          case 4: data[k] = view.getUint16(2 * k, true); break;
          case 5: data[k] = view.getInt16(2 * k, true); break;
          case 6: data[k] = view.getInt32(4 * k, true); break;
          case 12: data[k] = clampI32(view.getUint32(4 * k, true)); break;
          case 7: data[k] = clampI32(Number(view.getBigInt64(8 * k, true))); break;
          case 13: data[k] = clampI32(Number(view.getBigUint64(8 * k, true))); break;
        }
      }
    } else {
      const src: ArrayLike<number | LongLike> = type === 7 ? t.int64Data ?? [] : type === 13 || type === 12 ? t.uint64Data ?? [] : t.int32Data ?? [];
      if (src.length !== size) throw refuse(`holds ${src.length} values, not the ${size} its shape needs`);
      for (let k = 0; k < size; k++) data[k] = clampI32(num(src[k]));
    }
    return { name, dims, dtype: type === 9 ? 'bool' : 'int32', data };
  }
  throw refuse('has a type convlens does not read');
}

/** IEEE 754 half precision bits -> number. */
function half(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const f = bits & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits (the top half of a float32) -> number. */
function bfloat(bits: number): number {
  const v = new DataView(new ArrayBuffer(4));
  v.setUint32(0, (bits & 0xffff) << 16);
  return v.getFloat32(0);
}
