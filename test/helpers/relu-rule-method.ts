/**
 * Shared cases of the deconvnet and guided-backpropagation method tests. On y = sum_i w_i *
 * relu(x_i) (hand-set w and x of both signs) the input gradient of y is, by rule:
 *   standard w*[x>0]    deconvnet max(w,0)    guided max(w,0)*[x>0]
 * On the hand-written GraphModel x -> conv 2x2 (2 maps) -> relu -> spatial mean (3x3) -> logits,
 * with d logit_c / d relu_k = M[k,c] / 9 at every position p:
 *   deconvnet dx = sum_{p,k} max(M[k,c],0)/9 * filter_k (placed at p)
 *   guided    dx = sum_{p,k} max(M[k,c],0)/9 * [z_k(p) > 0] * filter_k (placed at p)
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { inputGradients } from '../../pipeline/methods/attribution.ts';
import type { MethodDef } from '../../pipeline/methods/types.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { artifact, darknetOnChelsea, finiteAndVaried } from './attribution-models.ts';
import { methodContext, readRaw, runMethod } from './method-context.ts';
import { buildActModel, conv64, graphWeights, t64, vals, writeTinyGraphModel } from './tiny-models.ts';

export type Rule = 'deconvnet' | 'guided';

const W = [1.5, -2, 0.5, -0.25, 3, -1];
const X = [
  [0.5, -1, 2, -0.5, 0.75, 1.25],
  [-0.75, 3, -2, 1.5, -0.125, -4],
];
const relu = (v: number) => Math.max(v, 0);

export function singleReluExpected(rule: Rule | 'standard', x: number[]): number[] {
  return x.map((xi, i) => (rule === 'standard' ? W[i] * (xi > 0 ? 1 : 0) : rule === 'deconvnet' ? relu(W[i]) : relu(W[i]) * (xi > 0 ? 1 : 0)));
}

/**
 * Runs the method on the single-ReLU model (one output unit, so a binary head whose class 1 has
 * the score y); checks the raw gradient, the heatmap and that the standard rule is back.
 */
export async function checkSingleRelu(method: MethodDef, rule: Rule) {
  const model = new LayersAdapter(buildActModel('relu', W));
  const input = tf.tensor4d(X.flat(), [2, 1, 2, 3]);
  const before = inputGradients(model, input, [1, 1]);
  const plainBefore = Array.from(await before.data());
  before.dispose();
  expect(plainBefore).toEqual(X.flatMap((x) => singleReluExpected('standard', x)));

  const ctx = await methodContext(model, input, { targets: [1, 1] });
  const arts = await runMethod(method, ctx);
  for (let i = 0; i < 2; i++) {
    const grad = await readRaw(ctx, artifact(arts, `${method.id}/s${i}/1/gradient`));
    expect(grad.shape).toEqual([1, 2, 3]);
    expect(Array.from(grad.data)).toEqual(singleReluExpected(rule, X[i]));
    const heat = await readRaw(ctx, artifact(arts, `${method.id}/s${i}/1/heatmap`));
    const g = singleReluExpected(rule, X[i]);
    expect(Array.from(heat.data)).toEqual([0, 1].map((p) => Math.max(...g.slice(3 * p, 3 * p + 3).map(Math.abs))));
  }
  const after = inputGradients(model, input, [1, 1]);
  expect(Array.from(await after.data())).toEqual(plainBefore);
  after.dispose();
  input.dispose();
  model.dispose();
}

/** The rule's input gradient on the tiny GraphModel, by hand in float64. */
function graphExpected(rule: Rule, x: number[], c: number): number[] {
  const w = graphWeights();
  const z = conv64(t64(x, [1, 4, 4, 1]), w.filter, [2, 2, 1, 2], w.bias, 'valid');
  const out = new Array<number>(16).fill(0);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 2; k++) {
    const mask = rule === 'guided' ? (z.data[(i * 3 + j) * 2 + k] > 0 ? 1 : 0) : 1;
    const g = (relu(w.matmul[k * 3 + c]) / 9) * mask;
    for (let di = 0; di < 2; di++) for (let dj = 0; dj < 2; dj++) out[(i + di) * 4 + j + dj] += g * w.filter[(di * 2 + dj) * 2 + k];
  }
  return out;
}

/** Runs the method on the hand-written GraphModel (the rule is global: GraphModels get it too). */
export async function checkGraphModel(method: MethodDef, rule: Rule) {
  const dir = await mkdtemp(join(tmpdir(), 'convlens-graph-'));
  await writeTinyGraphModel(dir);
  const { adapter: model } = await loadModel(dir);
  const xs = [vals(16, 81, 2), vals(16, 82, 2)];
  const input = tf.tensor4d(xs.flat(), [2, 4, 4, 1]);
  const targets = [0, 2];
  const ctx = await methodContext(model, input, { targets });
  const arts = await runMethod(method, ctx);
  for (let i = 0; i < 2; i++) {
    const grad = await readRaw(ctx, artifact(arts, `${method.id}/s${i}/${targets[i]}/gradient`));
    const expected = graphExpected(rule, xs[i], targets[i]);
    expect(expected.some((v) => v !== 0)).toBe(true);
    Array.from(grad.data).forEach((v, k) => expect(v).toBeCloseTo(expected[k], 6));
  }
  input.dispose();
  model.dispose();
}

/** Runs the method on the real Darknet Tiny (chelsea.png): finite, varied gradient and heatmap. */
export async function checkDarknet(method: MethodDef) {
  const { model, input, labels } = await darknetOnChelsea();
  const ctx = await methodContext(model, input, { classes: labels });
  const arts = await runMethod(method, ctx);
  const grad = arts.find((a) => a.id.endsWith('/gradient'))!;
  const heat = arts.find((a) => a.id.endsWith('/heatmap'))!;
  expect(grad.className).toBe('Egyptian cat');
  const g = await readRaw(ctx, grad);
  expect(g.shape).toEqual([224, 224, 3]);
  expect(finiteAndVaried(g.data)).toBe(true);
  const h = await readRaw(ctx, heat);
  expect(h.shape).toEqual([224, 224]);
  expect(finiteAndVaried(h.data)).toBe(true);
  input.dispose();
  model.dispose();
}
