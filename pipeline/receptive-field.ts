import { ConvlensError } from './errors.ts';
import type { ConvGeometry, LayerInfo } from './model/adapter.ts';

/**
 * Receptive fields from the layer graph: which input pixels an activation at (y, x) of a layer
 * can depend on. Rows and columns are independent (every supported layer acts on them
 * separately), so each axis is solved on its own.
 *
 * Per layer and axis, for an output index u (TensorFlow's conventions, which tfjs follows):
 *  - convolution / pooling, kernel k, stride s, dilation d (1 for pooling), input size n:
 *      k_eff = d (k - 1) + 1
 *      'valid': out = ceil((n - k_eff + 1) / s), pad_begin = 0
 *      'same':  out = ceil(n / s), total = max((out - 1) s + k_eff - n, 0), pad_begin = floor(total / 2)
 *      u reads input indices u s - pad_begin + j d, j = 0..k-1 (those outside [0, n) are padding);
 *  - ZeroPadding2D / Cropping2D / Pad (b rows added before, negative: cropped): u reads u - b;
 *  - any other layer with the spatial size of its input (activations, batch norm, add,
 *    concatenate, ...): pointwise, u reads u;
 *  - a layer that reduces a larger map to 1x1 (global pooling with keepDims, Mean): every index.
 * Composed from the input (jump = input pixels between neighbouring units, start = first input
 * pixel of unit 0, size = extent in input pixels; the image has jump 1, start 0, size 1):
 *      jump_out  = jump_in * s
 *      start_out = start_in - pad_begin * jump_in            (padding: start_in - b * jump_in)
 *      size_out  = size_in + (k_eff - 1) * jump_in
 * so unit u covers input pixels [start + u jump, start + u jump + size). Where branches of a
 * DAG meet, the field is the union over the paths: the bounding box, which is again of this
 * form when the branches share the jump (else `affine` is null).
 * That is the unclipped field (`full`): it can extend beyond the image. The exact field (`box`)
 * drops, at every layer, the indices that fall into padding: an index outside a feature map is
 * a padded zero, not a pixel, so clipping only at the image can overstate the field (a stride-2
 * 1x1 conv that never reads the last row, followed by a 'same' 3x3 conv). `box` propagates the
 * set of indices, not an interval, so dilation holes at the borders are exact too; it is the
 * bounding box of the input pixels that reach the unit through weights (with no zero weights and
 * no ReLU at zero, exactly the pixels whose change moves the activation).
 * Convention: inputs that are broadcast into a larger map (a 1x1 or non-spatial tensor, e.g. a
 * squeeze-excitation gate, which depends on the whole image) are left out and listed in
 * `broadcast`; the field is that of the convolutional paths.
 */

/** A box in input pixels: rows [top, top + height), columns [left, left + width). */
export interface Box {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** The closed form of one axis: unit u covers [start + u * jump, start + u * jump + size). */
export interface AxisAffine {
  jump: number;
  start: number;
  size: number;
}

export interface ReceptiveField {
  layer: string;
  /** Feature map [height, width]. */
  mapSize: [number, number];
  /** [rows, columns]; null for an axis where branches with different jumps meet. */
  affine: [AxisAffine | null, AxisAffine | null];
  /** Broadcast inputs that were left out (see above). */
  broadcast: string[];
  /** The exact field of unit (y, x), clipped at every layer's borders (empty: height/width 0). */
  box(y: number, x: number): Box;
  /** The unclipped field of unit (y, x): may start before 0 or end beyond the image. */
  full(y: number, x: number): Box;
}

type AxisMap =
  | { kind: 'window'; kernel: number; stride: number; dilation: number; padBegin: number }
  | { kind: 'shift'; before: number }
  | { kind: 'same' }
  | { kind: 'all' };

interface Edge {
  from: string;
  maps: [AxisMap, AxisMap];
}

interface GraphNode {
  size: [number, number];
  edges: Edge[];
}

const IMAGE = '\u0000image';

type LayerSource = { layers: readonly LayerInfo[]; inputShape: readonly [number, number, number] | readonly number[] };

/** The receptive field of `layer` (a layer with a spatial output [n, h, w, c]). */
export function receptiveField(model: LayerSource, layer: string): ReceptiveField {
  const g = buildGraph(model, layer);
  const cache = [new Map<number, [[number, number] | null, [number, number]]>(), new Map<number, [[number, number] | null, [number, number]]>()];
  const axis = (a: 0 | 1, u: number) => {
    const size = g.nodes.get(layer)!.size[a];
    if (!Number.isInteger(u) || u < 0 || u >= size) throw new RangeError(`receptiveField: ${a === 0 ? 'row' : 'column'} ${u} is outside ${layer} (${size})`);
    let r = cache[a].get(u);
    if (!r) {
      r = [clippedRange(g, layer, a, u), fullRange(g, layer, a, u)];
      cache[a].set(u, r);
    }
    return r;
  };
  return {
    layer,
    mapSize: g.nodes.get(layer)!.size,
    affine: [affine(g, 0), affine(g, 1)],
    broadcast: g.broadcast,
    box(y, x) {
      const ry = axis(0, y)[0];
      const rx = axis(1, x)[0];
      if (!ry || !rx) return { top: 0, left: 0, height: 0, width: 0 };
      return { top: ry[0], left: rx[0], height: ry[1] - ry[0] + 1, width: rx[1] - rx[0] + 1 };
    },
    full(y, x) {
      const ry = axis(0, y)[1];
      const rx = axis(1, x)[1];
      return { top: ry[0], left: rx[0], height: ry[1] - ry[0] + 1, width: rx[1] - rx[0] + 1 };
    },
  };
}

interface Graph {
  nodes: Map<string, GraphNode>;
  /** Every node reached from the target, inputs before the layers that read them. */
  topo: string[];
  broadcast: string[];
}

function buildGraph(model: LayerSource, target: string): Graph {
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  const spatial = (name: string): [number, number] | null => {
    if (name === IMAGE) return [model.inputShape[0], model.inputShape[1]];
    const s = byName.get(name)!.outputShape;
    return s.length === 4 && s[1] != null && s[2] != null ? [s[1], s[2]] : null;
  };
  const info = byName.get(target);
  if (!info) throw new ConvlensError(`no layer "${target}"`, { hint: 'Name a layer of the model; `convlens layers --config FILE` lists them all.' });
  if (!spatial(target)) {
    throw new ConvlensError(`layer "${target}" has output shape [${info.outputShape.join(', ')}]; a receptive field needs a spatial layer [batch, height, width, channels]`, {
      hint: 'Choose a layer before the flattening or global pooling; `convlens layers --config FILE` lists the output shapes.',
    });
  }
  const nodes = new Map<string, GraphNode>();
  const topo: string[] = [];
  const broadcast = new Set<string>();
  const visit = (name: string) => {
    if (nodes.has(name)) return;
    const node: GraphNode = { size: spatial(name)!, edges: [] };
    nodes.set(name, node);
    if (name !== IMAGE) node.edges = edgesOf(byName.get(name)!, node.size, (i) => (byName.has(i) ? i : IMAGE), spatial, broadcast);
    for (const e of node.edges) visit(e.from);
    topo.push(name);
  };
  visit(target);
  return { nodes, topo, broadcast: [...broadcast] };
}

function edgesOf(
  l: LayerInfo,
  out: [number, number],
  resolve: (input: string) => string,
  spatial: (name: string) => [number, number] | null,
  broadcast: Set<string>,
): Edge[] {
  const unsupported = (why: string) => new ConvlensError(`cannot compute receptive fields through layer "${l.name}" (${l.type}): ${why}`, {
    hint: 'Choose a layer before it, or one whose path from the input has only convolutions, pooling, padding and same-size layers.',
  });
  const inputs = l.inputs.map(resolve);
  const geometry = l.conv ?? l.pool;
  if (geometry || l.pad) {
    const from = inputs[0];
    const n = from === undefined ? null : spatial(from);
    if (!n) throw unsupported('its input is not a spatial map');
    const maps = [0, 1].map((a) => (geometry ? windowMap(geometry, a as 0 | 1, n[a], out[a], unsupported) : shiftMap(l.pad!, a as 0 | 1, n[a], out[a], unsupported))) as [AxisMap, AxisMap];
    return [{ from, maps }];
  }
  const edges: Edge[] = [];
  for (const from of inputs) {
    const n = spatial(from);
    if (n && n[0] === out[0] && n[1] === out[1]) {
      edges.push({ from, maps: [{ kind: 'same' }, { kind: 'same' }] });
    } else if (!n || (n[0] === 1 && n[1] === 1)) {
      broadcast.add(from === IMAGE ? 'input' : from);
    } else if (out[0] === 1 && out[1] === 1) {
      edges.push({ from, maps: [{ kind: 'all' }, { kind: 'all' }] });
    } else {
      throw unsupported(`it maps ${n[0]}x${n[1]} to ${out[0]}x${out[1]} and its geometry is unknown`);
    }
  }
  if (edges.length === 0) throw unsupported('none of its inputs is a map of its own size');
  return edges;
}

function windowMap(g: ConvGeometry, a: 0 | 1, n: number, out: number, fail: (why: string) => Error): AxisMap {
  const k = g.kernel[a];
  const s = g.strides[a];
  const d = g.dilation[a];
  const eff = d * (k - 1) + 1;
  const expected = g.padding === 'same' ? Math.ceil(n / s) : Math.ceil((n - eff + 1) / s);
  if (expected !== out) {
    throw fail(`a ${g.padding} window ${k} (stride ${s}, dilation ${d}) on ${n} gives ${expected}, but the layer outputs ${out} (explicit padding?)`);
  }
  const padBegin = g.padding === 'same' ? Math.floor(Math.max((out - 1) * s + eff - n, 0) / 2) : 0;
  return { kind: 'window', kernel: k, stride: s, dilation: d, padBegin };
}

function shiftMap(pad: [number, number, number, number], a: 0 | 1, n: number, out: number, fail: (why: string) => Error): AxisMap {
  const before = pad[2 * a];
  const after = pad[2 * a + 1];
  if (n + before + after !== out) throw fail(`padding ${before}+${after} on ${n} should give ${n + before + after}, but the layer outputs ${out}`);
  return { kind: 'shift', before };
}

/** Exact: the set of indices reaching unit u, layer by layer, clipped to each map; its bounds at the image. */
function clippedRange(g: Graph, target: string, a: 0 | 1, u: number): [number, number] | null {
  const sets = new Map<string, Uint8Array>();
  const setOf = (name: string) => {
    let s = sets.get(name);
    if (!s) {
      s = new Uint8Array(g.nodes.get(name)!.size[a]);
      sets.set(name, s);
    }
    return s;
  };
  setOf(target)[u] = 1;
  for (let i = g.topo.length - 1; i >= 0; i--) {
    const name = g.topo[i];
    const S = sets.get(name);
    if (!S || name === IMAGE) continue;
    for (const e of g.nodes.get(name)!.edges) {
      const T = setOf(e.from);
      const n = T.length;
      const m = e.maps[a];
      for (let v = 0; v < S.length; v++) {
        if (!S[v]) continue;
        if (m.kind === 'same') T[v] = 1;
        else if (m.kind === 'shift') {
          const t = v - m.before;
          if (t >= 0 && t < n) T[t] = 1;
        } else if (m.kind === 'all') T.fill(1);
        else {
          const base = v * m.stride - m.padBegin;
          for (let j = 0; j < m.kernel; j++) {
            const t = base + j * m.dilation;
            if (t >= 0 && t < n) T[t] = 1;
          }
        }
      }
    }
  }
  const img = sets.get(IMAGE);
  if (!img) return null;
  const lo = img.indexOf(1);
  return lo < 0 ? null : [lo, img.lastIndexOf(1)];
}

/** Unclipped: the interval reaching unit u, as if every map went on beyond its borders. */
function fullRange(g: Graph, target: string, a: 0 | 1, u: number): [number, number] {
  const iv = new Map<string, [number, number]>([[target, [u, u]]]);
  const widen = (name: string, lo: number, hi: number) => {
    const cur = iv.get(name);
    iv.set(name, cur ? [Math.min(cur[0], lo), Math.max(cur[1], hi)] : [lo, hi]);
  };
  for (let i = g.topo.length - 1; i >= 0; i--) {
    const name = g.topo[i];
    const r = iv.get(name);
    if (!r || name === IMAGE) continue;
    for (const e of g.nodes.get(name)!.edges) {
      const m = e.maps[a];
      if (m.kind === 'same') widen(e.from, r[0], r[1]);
      else if (m.kind === 'shift') widen(e.from, r[0] - m.before, r[1] - m.before);
      else if (m.kind === 'all') widen(e.from, 0, g.nodes.get(e.from)!.size[a] - 1);
      else widen(e.from, r[0] * m.stride - m.padBegin, r[1] * m.stride - m.padBegin + (m.kernel - 1) * m.dilation);
    }
  }
  return iv.get(IMAGE)!;
}

/** The closed form of the module comment, composed from the image in topological order. */
function affine(g: Graph, a: 0 | 1): AxisAffine | null {
  const at = new Map<string, AxisAffine | null>([[IMAGE, { jump: 1, start: 0, size: 1 }]]);
  for (const name of g.topo) {
    if (name === IMAGE) continue;
    const node = g.nodes.get(name)!;
    const parts = node.edges.map((e): AxisAffine | null => {
      const p = at.get(e.from);
      if (!p) return null;
      const m = e.maps[a];
      if (m.kind === 'same') return p;
      if (m.kind === 'shift') return { jump: p.jump, start: p.start - m.before * p.jump, size: p.size };
      if (m.kind === 'all') return { jump: 0, start: p.start, size: (g.nodes.get(e.from)!.size[a] - 1) * p.jump + p.size };
      return {
        jump: p.jump * m.stride,
        start: p.start - m.padBegin * p.jump,
        size: p.size + m.dilation * (m.kernel - 1) * p.jump,
      };
    });
    if (parts.length === 0 || parts.some((p) => !p || p.jump !== parts[0]!.jump)) {
      at.set(name, null);
      continue;
    }
    const start = Math.min(...parts.map((p) => p!.start));
    const end = Math.max(...parts.map((p) => p!.start + p!.size));
    at.set(name, { jump: parts[0]!.jump, start, size: end - start });
  }
  return at.get(g.topo[g.topo.length - 1]) ?? null;
}
