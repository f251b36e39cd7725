/**
 * The pieces that let converted models load: heads (model/head.ts), the graph rewrite
 * (model/graph-rewrite.ts), the Keras 2 repairs and layers (model/keras-compat.ts) and the
 * StridedSlice gradient (model/gradients.ts). Hand-made inputs, hand-computed expectations.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import '../../pipeline/model/gradients.ts';
import { findGraphOutput, resolveTensor, splitFusedOps, type GraphNodeDef } from '../../pipeline/model/graph-rewrite.ts';
import { classNamesFor, contrastWeight, defaultTarget, detectHead, headProbabilities, scoreMatrix, scoresFromOutputs } from '../../pipeline/model/head.ts';
import { groupedConv2d, repairKerasModel } from '../../pipeline/model/keras-compat.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { classScore } from '../../pipeline/model/adapter.ts';
import { maxAbsDiff } from '../helpers/finite-diff.ts';

beforeAll(async () => {
  tf.enableProdMode();
  await initBackend('wasm', silentLogger);
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('heads', () => {
  it('reads the head off the units and the output activation', () => {
    expect(detectHead(10, 'softmax').kind).toBe('softmax');
    expect(detectHead(10, 'none').kind).toBe('logits');
    expect(detectHead(1, 'sigmoid').kind).toBe('binary');
    expect(detectHead(1, 'none').kind).toBe('binary');
    expect(detectHead(5, 'sigmoid').kind).toBe('multi-label');
  });

  it('binary: scores [-z, z], p = [1 - sigmoid(z), sigmoid(z)], positive class by default, log-odds contrast', () => {
    const head = detectHead(1, 'sigmoid');
    const z = tf.tensor2d([[2], [-0.5]]);
    const s = scoresFromOutputs(head, z);
    expect(Array.from(s.dataSync())).toEqual([-2, 2, 0.5, -0.5]);
    const p = headProbabilities(head, s).arraySync() as number[][];
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    p.forEach((row, i) => {
      const zi = [2, -0.5][i];
      expect(row[0]).toBeCloseTo(1 - sig(zi), 6);
      expect(row[1]).toBeCloseTo(sig(zi), 6);
    });
    expect(defaultTarget(head, [0.9, 0.1])).toBe(1);
    // the contrast weight 1/2 makes S_A - S_B = +-z, log(p_A / p_B)
    expect(contrastWeight(head) * (2 - -2)).toBe(2);
    expect(scoreMatrix(head)).toEqual([[-1, 1]]);
    tf.dispose([z, s]);
  });

  it('multi-label: independent sigmoids; softmax and logits heads: softmax of the scores', () => {
    const s = tf.tensor2d([[1, -1, 3]]);
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    expect(Array.from(headProbabilities(detectHead(3, 'sigmoid'), s).dataSync()).map((v) => +v.toFixed(6))).toEqual([1, -1, 3].map((v) => +sig(v).toFixed(6)));
    const e = [1, -1, 3].map(Math.exp);
    const soft = e.map((v) => v / e.reduce((a, b) => a + b, 0));
    expect(maxAbsDiff(headProbabilities(detectHead(3, 'none'), s).dataSync(), soft)).toBeLessThan(1e-6);
    expect(defaultTarget(detectHead(3, 'none'), [0.1, 0.2, 0.7])).toBe(2);
    s.dispose();
  });

  it('class names: one per output; a binary head takes the positive class or [negative, positive]', () => {
    expect(classNamesFor(detectHead(1, 'sigmoid'), ['dog'])).toEqual(['not dog', 'dog']);
    expect(classNamesFor(detectHead(1, 'sigmoid'), ['cat', 'dog'])).toEqual(['cat', 'dog']);
    expect(classNamesFor(detectHead(1, 'sigmoid'), undefined)).toEqual(['negative', 'positive']);
    expect(classNamesFor(detectHead(1, 'sigmoid'), ['a', 'b', 'c'])).toMatchObject({ problem: expect.stringMatching(/one sigmoid output \(a binary classifier\)/) });
    expect(classNamesFor(detectHead(3, 'softmax'), ['a', 'b'])).toMatchObject({ problem: expect.stringMatching(/2 names but the model has 3 outputs/) });
  });

  it('a LayersModel ending in Dense(sigmoid) is split before the sigmoid: scores are W x + b', () => {
    const input = tf.input({ shape: [1, 2, 1] });
    const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 3, activation: 'sigmoid', weights: [tf.tensor2d([1, 0, -1, 0, 1, 2], [2, 3]), tf.tensor1d([0, 0.5, 0])] }).apply(flat) as tf.SymbolicTensor;
    const adapter = new LayersAdapter(tf.model({ inputs: input, outputs: out }));
    expect(adapter.head).toEqual({ kind: 'multi-label', activation: 'sigmoid', units: 3 });
    const x = tf.tensor4d([1, 2], [1, 1, 2, 1]);
    const { logits } = adapter.forward(x);
    // [1, 2] W + b = [1, 2, 3] + [0, 0.5, 0]
    expect(Array.from(logits.dataSync())).toEqual([1, 2.5, 3]);
    const p = adapter.probabilities(x);
    expect(maxAbsDiff(p.dataSync(), [1, 2.5, 3].map((v) => 1 / (1 + Math.exp(-v))))).toBeLessThan(1e-6);
    tf.dispose([x, logits, p]);
    adapter.dispose();
  });
});

describe('graph rewrite', () => {
  const fused = (name: string, op: string, ops: string[], inputs: string[], extra: Record<string, unknown> = {}): GraphNodeDef => ({
    name, op, input: inputs,
    attr: { T: { type: 'DT_FLOAT' }, fused_ops: { list: { s: ops.map(b64) } }, num_args: { i: String(inputs.length - 2) }, strides: { list: { i: ['1', '1', '1', '1'] } }, padding: { s: b64('SAME') }, ...extra },
  });

  it('splits conv + bias + activation into three nodes; the activation keeps the name, the rest are <name>/<op>', () => {
    const out = splitFusedOps([
      { name: 'x', op: 'Placeholder' },
      fused('block/Relu', '_FusedConv2D', ['BiasAdd', 'Relu'], ['x', 'w', 'b', '^ctl']),
      fused('head/BiasAdd', '_FusedMatMul', ['BiasAdd'], ['block/Relu', 'k', 'kb'], { transpose_a: { b: false } }),
      fused('hs', 'FusedDepthwiseConv2dNative', ['BiasAdd', '_FusedHardSwish'], ['x', 'dw', 'db']),
      fused('lk', '_FusedConv2D', ['BiasAdd', 'LeakyRelu'], ['x', 'w', 'b'], { leakyrelu_alpha: { f: 0.3 } }),
      fused('pr', '_FusedConv2D', ['BiasAdd', 'Prelu'], ['x', 'w', 'b', 'alpha']),
      fused('nb', 'FusedDepthwiseConv2dNative', ['NoOp', 'Relu'], ['x', 'dw']),
    ]);
    const by = new Map(out.map((n) => [n.name, n]));
    expect(by.get('block/Relu/Conv2D')).toMatchObject({ op: 'Conv2D', input: ['x', 'w', '^ctl'] });
    expect(by.get('block/Relu/Conv2D')!.attr).not.toHaveProperty('fused_ops');
    expect(by.get('block/Relu/Conv2D')!.attr).toHaveProperty('strides');
    expect(by.get('block/Relu/BiasAdd')).toMatchObject({ op: 'BiasAdd', input: ['block/Relu/Conv2D', 'b'] });
    expect(by.get('block/Relu')).toMatchObject({ op: 'Relu', input: ['block/Relu/BiasAdd'] });
    // bias only: the bias add keeps the name
    expect(by.get('head/BiasAdd/MatMul')).toMatchObject({ op: 'MatMul', input: ['block/Relu', 'k'], attr: { transpose_a: { b: false } } });
    expect(by.get('head/BiasAdd')).toMatchObject({ op: 'BiasAdd', input: ['head/BiasAdd/MatMul', 'kb'] });
    expect(by.get('hs')).toMatchObject({ op: 'ConvlensHardSwish', input: ['hs/BiasAdd'] });
    expect(by.get('hs/DepthwiseConv2dNative')).toMatchObject({ op: 'DepthwiseConv2dNative' });
    expect(by.get('lk')).toMatchObject({ op: 'LeakyRelu', attr: { alpha: { f: 0.3 } } });
    expect(by.get('pr')).toMatchObject({ op: 'Prelu', input: ['pr/BiasAdd', 'alpha'] });
    expect(by.get('nb')).toMatchObject({ op: 'Relu', input: ['nb/DepthwiseConv2dNative'] });
  });

  it('refuses a fusion it does not know, naming the node', () => {
    expect(() => splitFusedOps([fused('odd', '_FusedConv2D', ['BiasAdd', 'Gelu'], ['x', 'w', 'b'])])).toThrow(/graph node "odd" \(_FusedConv2D\) fuses BiasAdd \+ Gelu/);
  });

  it('finds the scores behind Identity / IdentityN chains and splits a final Softmax or Sigmoid off', () => {
    const nodes = new Map<string, GraphNodeDef>([
      ['logits', { name: 'logits', op: 'BiasAdd', input: ['m', 'b'] }],
      ['probs', { name: 'probs', op: 'Softmax', input: ['logits'] }],
      ['sig', { name: 'sig', op: 'Sigmoid', input: ['logits'] }],
      ['n', { name: 'n', op: 'IdentityN', input: ['sig', 'probs', '^ctl'] }],
      ['Identity', { name: 'Identity', op: 'Identity', input: ['probs'] }],
      ['Identity_1', { name: 'Identity_1', op: 'Identity', input: ['n:1'] }],
      ['Identity_2', { name: 'Identity_2', op: 'Identity', input: ['n'] }],
      ['Identity_3', { name: 'Identity_3', op: 'Identity', input: ['logits'] }],
      ['call', { name: 'call', op: 'StatefulPartitionedCall', input: ['x'] }],
      ['Identity_4', { name: 'Identity_4', op: 'Identity', input: ['call:0'] }],
    ]);
    expect(resolveTensor(nodes, 'Identity_1:0')).toBe('probs');
    expect(findGraphOutput(nodes, 'Identity:0')).toEqual({ scores: 'logits', activation: 'softmax' });
    expect(findGraphOutput(nodes, 'Identity_1:0')).toEqual({ scores: 'logits', activation: 'softmax' });
    expect(findGraphOutput(nodes, 'Identity_2:0')).toEqual({ scores: 'logits', activation: 'sigmoid' });
    expect(findGraphOutput(nodes, 'Identity_3:0')).toEqual({ scores: 'logits', activation: 'none' });
    expect(() => findGraphOutput(nodes, 'Identity_4:0')).toThrow(/comes from a function call \(node "call", StatefulPartitionedCall\)/);
  });
});

describe('Keras 2 repairs', () => {
  const model = (layers: unknown[], extra: Record<string, unknown> = {}) => ({
    modelTopology: { keras_version: '2.19.0', backend: 'tensorflow', model_config: { class_name: 'Functional', config: { name: 'm', layers, input_layers: [['in', 0, 0]], output_layers: [['out', 0, 0]] } }, ...extra },
    weightSpecs: [],
  }) as unknown as tf.io.ModelArtifacts;
  const inputLayer = { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_input_shape: [null, 4, 4, 2], dtype: 'float32' }, inbound_nodes: [] };

  it('refuses, one line per layer, what cannot run: a Lambda, an unknown class; and Keras 3 files', () => {
    const err = (() => {
      try {
        repairKerasModel(model([inputLayer,
          { class_name: 'Lambda', name: 'fn', config: { name: 'fn' }, inbound_nodes: [[['in', 0, 0, {}]]] },
          { class_name: 'MyCustomBlock', name: 'custom', config: { name: 'custom' }, inbound_nodes: [[['fn', 0, 0, {}]]] },
        ]));
      } catch (e) { return e as ConvlensError; }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConvlensError);
    expect(err!.message.split('\n')).toEqual([
      'the LayersModel has 2 layers TensorFlow.js layers cannot run:',
      '  layer "fn" (Lambda): a Lambda layer holds Python code, which no converter carries into model.json',
      '  layer "custom" (MyCustomBlock): a layer class TensorFlow.js layers does not have',
    ]);
    expect(err!.hint).toMatch(/--input_format=tf_saved_model/);
    expect(() => repairKerasModel(model([inputLayer], { keras_version: '3.5.0' }))).toThrow(/written from Keras 3\.5\.0/);
  });

  it('moves tensor arguments of a TFOpLambda into its inputs and drops the SeparableConv2D kernel_* keys', () => {
    const repaired = repairKerasModel(model([inputLayer,
      { class_name: 'SeparableConv2D', name: 'sep', config: { name: 'sep', filters: 2, kernel_size: [1, 1], kernel_initializer: {}, kernel_regularizer: null, kernel_constraint: null }, inbound_nodes: [[['in', 0, 0, {}]]] },
      { class_name: 'TFOpLambda', name: 'mul', config: { name: 'mul', function: 'math.multiply' }, inbound_nodes: [['sep', 0, 0, { y: ['in', 0, 0], name: null }]] },
    ])).modelTopology as { model_config: { config: { layers: { config: Record<string, unknown>; inbound_nodes: unknown[] }[] } } };
    const [, sep, mul] = repaired.model_config.config.layers;
    expect(sep.config).not.toHaveProperty('kernel_initializer');
    expect(mul.inbound_nodes).toEqual([[['sep', 0, 0, {}], ['in', 0, 0, {}]]]);
    expect(JSON.parse(Buffer.from(mul.config.convlens_spec as string, 'base64').toString())).toEqual({ fn: 'math.multiply', list: false, first: 1, kwargs: { y: { input: 1 } } });
  });

  it('gives the bare weight names of adapted Normalization layers back to their layers, by name order', () => {
    const norm = (name: string) => ({ class_name: 'Normalization', name, config: { name, axis: [-1], mean: null, variance: null }, inbound_nodes: [[['in', 0, 0, {}]]] });
    const arts = model([inputLayer, norm('nb'), norm('na')]);
    arts.weightSpecs = ['conv/kernel', 'mean', 'variance', 'count', 'mean_1', 'variance_1', 'count_1'].map((name) => ({ name, shape: [2], dtype: 'float32' as const }));
    expect(repairKerasModel(arts).weightSpecs!.map((w) => w.name)).toEqual(['conv/kernel', 'na/mean', 'na/variance', 'na/count', 'nb/mean', 'nb/variance', 'nb/count']);
  });

  it('a grouped convolution equals one convolution per group; groups = channels is a depthwise convolution', () => {
    const x = tf.randomNormal([1, 5, 5, 4], 0, 1, 'float32', 1) as tf.Tensor4D;
    const k = tf.randomNormal([3, 3, 2, 6], 0, 1, 'float32', 2) as tf.Tensor4D;
    const got = groupedConv2d(x, k, [1, 1], 'same', [1, 1], 2);
    const [x0, x1] = tf.split(x, 2, 3) as tf.Tensor4D[];
    const [k0, k1] = tf.split(k, 2, 3) as tf.Tensor4D[];
    const want = tf.concat([tf.conv2d(x0, k0, 1, 'same'), tf.conv2d(x1, k1, 1, 'same')], 3);
    expect(maxAbsDiff(got.dataSync(), want.dataSync())).toBeLessThan(1e-5);
    const kd = tf.randomNormal([3, 3, 1, 8], 0, 1, 'float32', 3) as tf.Tensor4D;
    const dw = groupedConv2d(x, kd, [1, 1], 'valid', [1, 1], 4);
    const perGroup = tf.concat(tf.split(x, 4, 3).map((xg, g) => tf.conv2d(xg as tf.Tensor4D, tf.slice(kd, [0, 0, 0, 2 * g], [-1, -1, -1, 2]) as tf.Tensor4D, 1, 'valid')), 3);
    expect(maxAbsDiff(dw.dataSync(), perGroup.dataSync())).toBeLessThan(1e-5);
    tf.dispose([x, k, got, x0, x1, k0, k1, want, kd, dw, perGroup]);
  });
});

describe('StridedSlice gradient', () => {
  it('scatters dy back to the sliced positions (stride 1, stride > 1, a shrunk axis): the coefficients of a linear function', () => {
    const x = tf.randomNormal([2, 7, 6, 5], 0, 1, 'float32', 1);
    const cases: [number[], number[], number[], number, number, number][] = [
      [[0, 0, 0, 0], [0, 0, 0, 3], [1, 1, 1, 1], 7, 7, 0],
      [[0, 1, 0, 1], [0, 7, 5, 5], [1, 2, 3, 2], 1, 1, 0],
      [[0, 2], [0, 3], [1, 1], 1, 1, 2],
    ];
    for (const [b, e, s, bm, em, sm] of cases) {
      const slice = (t: tf.Tensor) => tf.stridedSlice(t, b, e, s, bm, em, 0, 0, sm);
      const w = tf.randomNormal(slice(x).shape, 0, 1, 'float32', 2);
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(slice(t), w)))(x);
      // f(x) = sum(w * slice(x)) is linear: its gradient is w placed where the slice reads x
      const index = tf.reshape(tf.range(0, x.size, 1, 'float32'), x.shape);
      const picked = Array.from(slice(index).dataSync());
      const want = new Float32Array(x.size);
      const wv = w.dataSync();
      picked.forEach((flat, k) => { want[flat] += wv[k]; });
      expect(Array.from(g.dataSync())).toEqual(Array.from(want));
      tf.dispose([w, g, index]);
    }
    x.dispose();
  });
});

describe('graph batch normalization', () => {
  it('FusedBatchNormV3 runs as x * s + (offset - mean * s); its gradient is s, with no Tile', async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { loadModel } = await import('../../pipeline/model/load.ts');
    const dir = await mkdtemp(join(tmpdir(), 'convlens-bn-'));
    const dims = (shape: number[]) => ({ dim: shape.map((d) => ({ size: String(d) })) });
    const cst = (name: string, dtype: string, shape: number[]) => ({ name, op: 'Const', attr: { value: { tensor: { dtype, tensorShape: dims(shape) } }, dtype: { type: dtype } } });
    const float = { type: 'DT_FLOAT' };
    const node = [
      { name: 'x', op: 'Placeholder', attr: { dtype: float, shape: { shape: dims([-1, 2, 2, 2]) } } },
      cst('scale', 'DT_FLOAT', [2]), cst('offset', 'DT_FLOAT', [2]), cst('mean', 'DT_FLOAT', [2]), cst('var', 'DT_FLOAT', [2]), cst('axes', 'DT_INT32', [2]),
      { name: 'bn', op: 'FusedBatchNormV3', input: ['x', 'scale', 'offset', 'mean', 'var'], attr: { T: float, U: float, epsilon: { f: 0.001 }, is_training: { b: false }, data_format: { s: b64('NHWC') } } },
      { name: 'pool', op: 'Mean', input: ['bn', 'axes'], attr: { T: float, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } } },
      { name: 'Identity', op: 'Identity', input: ['pool'], attr: { T: float } },
    ];
    const values = [[2, -0.5], [0.25, 1], [0.5, -1], [4, 0.25]];
    const weights = ['scale', 'offset', 'mean', 'var'].map((name) => ({ name, shape: [2], dtype: 'float32' as const }));
    await writeFile(join(dir, 'model.json'), JSON.stringify({
      format: 'graph-model', modelTopology: { node, library: {}, versions: {} },
      weightsManifest: [{ paths: ['w.bin'], weights: [...weights, { name: 'axes', shape: [2], dtype: 'int32' }] }],
    }));
    const bytes = [...values.map((v) => Buffer.from(new Float32Array(v).buffer)), Buffer.from(new Int32Array([1, 2]).buffer)];
    await writeFile(join(dir, 'w.bin'), Buffer.concat(bytes));
    const { adapter } = await loadModel(dir);
    expect(adapter.layer('bn').type).toBe('ConvlensBatchNorm');
    const xs = [0.5, -1, 2, 0, 1.5, 0.25, -0.75, 3];
    const x = tf.tensor4d(xs, [1, 2, 2, 2]);
    const s = [0, 1].map((c) => values[0][c] / Math.sqrt(values[3][c] + 0.001));
    const want = [0, 1].map((c) => [0, 1, 2, 3].reduce((acc, p) => acc + xs[2 * p + c] * s[c] + values[1][c] - values[2][c] * s[c], 0) / 4);
    const { logits } = adapter.forward(x);
    expect(maxAbsDiff(logits.dataSync(), want)).toBeLessThan(1e-5);
    const w = tf.tensor2d([[1, 0]]);
    const prof = await tf.profile(() => {
      const g = adapter.gradient(x, classScore(w), 'input');
      expect(maxAbsDiff(g.grad.dataSync(), xs.map((_, i) => (i % 2 === 0 ? s[0] / 4 : 0)))).toBeLessThan(1e-6);
      tf.dispose([g.grad, g.value, g.logits]);
    });
    expect(prof.kernelNames).not.toContain('Tile');
    tf.dispose([x, logits, w]);
    adapter.dispose();
  });
});

describe('LayersModel batch normalization', () => {
  /** conv (3x3, bias) -> BN -> relu -> depthwise -> BN -> GAP -> dense; BN statistics far from their defaults. */
  function bnModel() {
    const input = tf.input({ shape: [6, 6, 2] });
    const seeded = (seed: number) => tf.initializers.randomNormal({ seed });
    const c1 = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'c1', kernelInitializer: seeded(1), biasInitializer: seeded(2) }).apply(input) as tf.SymbolicTensor;
    const bn1 = tf.layers.batchNormalization({ name: 'bn1', epsilon: 0.01 }).apply(c1) as tf.SymbolicTensor;
    const r1 = tf.layers.reLU({ name: 'r1' }).apply(bn1) as tf.SymbolicTensor;
    const d1 = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'valid', name: 'd1', depthwiseInitializer: seeded(3) }).apply(r1) as tf.SymbolicTensor;
    const bn2 = tf.layers.batchNormalization({ name: 'bn2' }).apply(d1) as tf.SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(bn2) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2, name: 'out', kernelInitializer: seeded(4) }).apply(gap) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    for (const [name, c] of [['bn1', 3], ['bn2', 6]] as const) {
      const layer = model.getLayer(name);
      layer.setWeights([tf.randomUniform([c], 0.5, 2, 'float32', 5), tf.randomNormal([c], 0, 1, 'float32', 6), tf.randomNormal([c], 0, 1, 'float32', 7), tf.randomUniform([c], 0.2, 3, 'float32', 8)]);
    }
    return model;
  }

  it('folded into the convolutions: the same outputs as tfjs, the convolution still available by name, no Tile in the gradient', async () => {
    const model = bnModel();
    const adapter = new LayersAdapter(model);
    const x = tf.randomNormal([2, 6, 6, 2], 0, 1, 'float32', 9) as tf.Tensor4D;
    const p = model.predict(x) as tf.Tensor;
    const { logits, activations } = adapter.forward(x, ['c1', 'bn1', 'd1']);
    expect(maxAbsDiff(logits.dataSync(), p.dataSync())).toBeLessThan(1e-5);
    // each asked-for layer is what tfjs-layers computes for it
    const sub = tf.model({ inputs: model.inputs, outputs: ['c1', 'bn1', 'd1'].map((n) => model.getLayer(n).output as tf.SymbolicTensor) });
    const ref = sub.predict(x) as tf.Tensor[];
    ['c1', 'bn1', 'd1'].forEach((n, i) => expect(maxAbsDiff(activations.get(n)!.dataSync(), ref[i].dataSync()), n).toBeLessThan(1e-5));
    const w = tf.tensor2d([[1, 0], [0, 1]]);
    const prof = await tf.profile(() => {
      const g = adapter.gradient(x, classScore(w), 'input');
      tf.dispose([g.grad, g.value, g.logits]);
    });
    expect(prof.kernelNames).not.toContain('Tile');
    expect(prof.kernelNames).not.toContain('FusedBatchNorm');
    // the gradient w.r.t. the folded convolution: through bn1 and what follows, by central differences along a direction
    const g = adapter.gradient(x, classScore(w), 'c1');
    const u = tf.randomNormal(g.value.shape, 0, 1, 'float32', 10);
    const tail = (a: tf.Tensor) => ['bn1', 'r1', 'd1', 'bn2', 'gap', 'out'].reduce((t, n) => model.getLayer(n).apply(t, { training: false }) as tf.Tensor, a);
    const f = (a: tf.Tensor) => tf.tidy(() => tf.sum(tf.mul(tail(a), w)).dataSync()[0]);
    const eps = 1e-2;
    const fd = (f(tf.add(g.value, tf.mul(u, eps))) - f(tf.sub(g.value, tf.mul(u, eps)))) / (2 * eps);
    expect(tf.sum(tf.mul(g.grad, u)).dataSync()[0]).toBeCloseTo(fd, 3);
    tf.dispose([x, p, logits, ...activations.values(), ...ref, w, g.grad, g.value, g.logits, u]);
    adapter.dispose();
  });
});
