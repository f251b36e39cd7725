import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { camOptions, defineCamMethod } from './cam-base.ts';
import { gradCamWeights } from './grad-cam.ts';
import { contrastWeight } from '../model/head.ts';
import { classOptionProblems, oneHotRows, resolveClassOption, targetOption, resolveTargets } from './targets.ts';
import type { MethodContext } from './types.ts';

/**
 * Contrastive Grad-CAM, "why A and not B" (Prabhushankar et al. 2020, "Contrastive Explanations
 * in Neural Networks"; the class-contrastive Grad-CAM): Grad-CAM of the score difference
 * S = y^A - y^B (pre-softmax scores), i.e. the objective weights +1 at A and -1 at B:
 *   alpha_k = (1 / hw) sum_ij dS/dA_ij^k = alpha_k^A - alpha_k^B
 *   L^{A,B} = ReLU( sum_k alpha_k A^k )                                 [h, w]
 * Bright regions raise A's score relative to B's; L^{B,A} = ReLU(-sum_k alpha_k A^k) is the
 * complementary part, so the two maps never overlap. Prabhushankar et al. backpropagate a loss
 * between the prediction and B; the score difference used here is the linear form of the same
 * question and needs no loss choice. Upsampling, scaling and raw data as for grad-cam.
 * Heads (model/head.ts): for a softmax head S = log(p_A / p_B). A binary head's classes are the
 * positive class (score z) and its complement (score -z); there S = (y^A - y^B) / 2 = +-z, the
 * same log-odds, so "why positive and not negative" is Grad-CAM of z and "why negative and not
 * positive" its complement. A multi-label head's S is the difference of two independent logits.
 * `target` (A) defaults to the prediction; `versus` (B) to the runner-up: the highest-scoring
 * class other than A (the second prediction when A is the top-1). Samples where B = A are skipped
 * with a warning (the contrast of a class with itself is zero).
 * Artifacts carry class = A, variant "vs-<B>", caption `"A" vs "B"`, stats versus / versusName.
 * The map, options and writing are the CAM base's (cam-base.ts) with Grad-CAM's alpha; this file
 * gives the objective.
 */
export const contrastiveGradCam = defineCamMethod({
  id: 'contrastive-grad-cam',
  title: 'Contrastive Grad-CAM',
  paper: 'Prabhushankar et al. 2020, Contrastive Explanations in Neural Networks',
  channelWeights: gradCamWeights,
  options: camOptions({
    target: targetOption.describe('Class A of "why A and not B": "top-1" (the prediction), a class index, or a class name'),
    extra: {
      versus: z.union([z.literal('runner-up'), z.number().int().nonnegative(), z.string().min(1)]).default('runner-up')
        .describe('Class B of "why A and not B": "runner-up" (the highest-scoring class other than A), a class index, or a class name'),
    },
  }),
  check(opts, model, classes, found) {
    const problems = classOptionProblems(model, classes, { versus: opts.versus });
    const same = typeof opts.target === typeof opts.versus && opts.target === opts.versus;
    const sameByName = classes && typeof opts.target !== typeof opts.versus && opts.target !== 'top-1' && opts.versus !== 'runner-up'
      && (typeof opts.target === 'number' ? classes[opts.target] === opts.versus : classes[opts.versus as number] === opts.target);
    if (found.length + problems.length === 0 && (same || sameByName)) {
      problems.push({ key: 'versus', message: `versus names the same class as target (${JSON.stringify(opts.versus)}); the contrast of a class with itself is zero` });
    }
    return problems;
  },
  objective(ctx, opts) {
    const a = resolveTargets(ctx, opts.target, 'contrastive-grad-cam');
    const b = opts.versus === 'runner-up'
      ? runnerUp(ctx, a)
      : ctx.samples.map((s) => resolveClassOption('contrastive-grad-cam', 'versus', opts.versus as number | string, s, ctx.classes));
    const keep = ctx.samples.map((_, i) => i).filter((i) => a[i] !== b[i]);
    const same = ctx.samples.filter((_, i) => a[i] === b[i]);
    if (same.length) {
      ctx.logger.warn(`contrastive-grad-cam: ${same.map((s) => s.source).join(', ')} skipped: the class to explain and the class to contrast it with are the same ("${ctx.classes[b[ctx.samples.indexOf(same[0])]]}")`);
    }
    const name = (c: number) => ctx.classes[c] ?? String(c);
    return {
      rows: keep,
      weights: contrastWeights(keep.map((i) => a[i]), keep.map((i) => b[i]), ctx.model.numClasses, contrastWeight(ctx.model.head)),
      targets: keep.map((i) => a[i]),
      meta: (j) => {
        const [A, B] = [a[keep[j]], b[keep[j]]];
        return { variant: `vs-${B}`, classCaption: () => `"${name(A)}" vs "${name(B)}"`, stats: () => ({ versus: B, versusName: name(B) }) };
      },
    };
  },
});

/** Objective weights [n, classes]: +w at A_i, -w at B_i (w = 1, or 1/2 for a binary head: head.ts contrastWeight). */
export function contrastWeights(a: readonly number[], b: readonly number[], numClasses: number, w = 1): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.sub(oneHotRows(a, numClasses), oneHotRows(b, numClasses)), w) as tf.Tensor2D);
}

/** For each sample, the highest-scoring class other than a[i] (forward passes in batches). */
export function runnerUp(ctx: Pick<MethodContext, 'model' | 'input' | 'settings'>, a: readonly number[]): number[] {
  const n = ctx.input.shape[0];
  const out: number[] = [];
  const batch = Math.max(1, ctx.settings.batchSize);
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const best = tf.tidy(() => {
      const { logits } = ctx.model.forward(tf.slice(ctx.input, [s, 0, 0, 0], [e - s, -1, -1, -1]));
      const mask = oneHotRows(a.slice(s, e), ctx.model.numClasses);
      return tf.argMax(tf.where(tf.equal(mask, 1), tf.fill(logits.shape, -Infinity), logits), 1);
    });
    out.push(...best.dataSync());
    best.dispose();
  }
  return out;
}
