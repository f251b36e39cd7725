import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../logger.ts';
import { methodPasses, type MethodContext, type MethodDef } from '../methods/types.ts';
import { decodeNpy } from '../npy.ts';
import { ReleaseWriter } from '../release-writer.ts';
import { argsort } from './sort.ts';
import type { MetricsOptions } from './options.ts';
import { defineMetric } from './metric.ts';
import type { MetricsFlag, RandomizationMethod, RandomizationMetric } from './types.ts';

/**
 * Model-parameter randomization test, cascading (Adebayo et al. 2018, "Sanity Checks for
 * Saliency Maps", sec. 3.1). The weighted layers are re-initialised from the top (the output
 * layer first), cumulatively: at step k the top m_k layers are randomized (see
 * `ModelAdapter.withRandomizedLayers` for the draws); every evaluated method is run again, as in
 * the report (same options, same classes: the original predictions), into a scratch release,
 * and its raw maps are compared with the originals by Spearman's rank correlation, of the
 * absolute values (the paper's main figure) and of the signed values (the paper's other variant;
 * equal for non-negative maps). Maps are compared at the resolution they were computed.
 * With `maxSteps` < the number of weighted layers, m_k is spaced evenly over depth: m_k =
 * 1 + round((k - 1) (L - 1) / (S - 1)), so the first step randomizes only the output layer and
 * the last all L of them. A method whose mean |map| correlation after the full cascade is above
 * `threshold` is flagged: its maps barely depend on what the model learned (the paper found this
 * for guided backpropagation and Guided Grad-CAM). `insensitiveUpTo` records how far down the
 * cascade the correlation stays above the threshold, since the paper's finding for guided
 * backpropagation is invariance to the higher layers, which the full cascade can hide once the
 * first convolution (the edge filters) is re-initialised too.
 * Conventions: ties get average ranks (Spearman's rho as the Pearson correlation of the ranks,
 * scipy.stats.spearmanr); where either map is constant the ranks carry no order and rho is taken
 * as 0, not undefined, so a method whose maps collapse to a constant counts as changed.
 */

/** Ranks 1..n (values compared as float32, NaN lowest), ties sharing their average rank. */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const idx = argsort(values);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = Number.isNaN(values[i]) ? -Infinity : values[i];
  const ranks = new Float64Array(n);
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && v[idx[j + 1]] === v[idx[i]]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[idx[k]] = r;
    i = j + 1;
  }
  return ranks;
}

/** Spearman's rho with average ranks for ties; 0 when either input is constant (see above). */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`spearman: ${a.length} vs ${b.length} values`);
  const ra = averageRanks(a);
  const rb = averageRanks(b);
  const n = a.length;
  const mean = (n + 1) / 2;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    const x = ra[i] - mean;
    const y = rb[i] - mean;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  if (!(saa > 0) || !(sbb > 0)) return 0;
  return Math.max(-1, Math.min(1, sab / Math.sqrt(saa * sbb)));
}

/** How many layers (from the top) are randomized at each cascade step: evenly spaced, ending at all. */
export function cascadeCounts(layers: number, maxSteps: number): number[] {
  if (layers <= 0) return [];
  const S = Math.min(layers, Math.max(1, maxSteps));
  if (S === 1) return [layers];
  return [...new Set(Array.from({ length: S }, (_, k) => 1 + Math.round((k * (layers - 1)) / (S - 1))))];
}

/** Layers holding weights, from the top (the output layer first). */
export function weightedLayersTopDown(model: MethodContext['model']): string[] {
  return model.layers.filter((l) => l.params > 0).map((l) => l.name).reverse();
}

export interface EvaluatedMethod {
  def: MethodDef;
  opts: Record<string, unknown>;
  /** Sample id -> the original map's artifact id and raw values. */
  maps: Map<string, { artifactId: string; raw: Float32Array }>;
}

const round = (v: number | null) => (v === null ? null : Number(v.toPrecision(6)));
const meanOf = (xs: (number | null)[]) => {
  const ok = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : null;
};

/** Runs the cascade for the given methods and returns the table (see the module comment). */
export async function randomizationTest(ctx: MethodContext, methods: readonly EvaluatedMethod[], opts: MetricsOptions['randomization'], logger: Logger): Promise<RandomizationMetric> {
  const layers = weightedLayersTopDown(ctx.model);
  const seed = ctx.settings.seed + opts.seed;
  const base: RandomizationMetric = { seed, threshold: opts.threshold, layers, steps: [], methods: [] };
  if (layers.length === 0 || methods.length === 0) {
    return { ...base, note: layers.length === 0 ? 'the model has no layers with weights' : 'no methods to test' };
  }
  const counts = cascadeCounts(layers.length, opts.maxSteps);
  base.steps = counts.map((m, k) => ({ step: k + 1, layer: layers[m - 1], randomized: m }));
  const samples = ctx.samples.map((s) => s.id);
  // per method, per sample, per step
  const abs = methods.map(() => samples.map(() => counts.map((): number | null => null)));
  const signed = methods.map(() => samples.map(() => counts.map((): number | null => null)));
  const quiet: Logger = {
    info: (m) => logger.debug(`randomization: ${m}`),
    warn: (m) => logger.debug(`randomization: ${m}`),
    debug: (m) => logger.debug(`randomization: ${m}`),
    progress: () => ({ tick() {}, done() {} }),
  };
  const bar = logger.progress(`metrics: randomization (${counts.length} steps x ${methods.length} methods)`, counts.length * methods.length);
  const root = await mkdtemp(join(tmpdir(), 'convlens-randomization-'));
  try {
    for (let k = 0; k < counts.length; k++) {
      await ctx.model.withRandomizedLayers(layers.slice(0, counts[k]), seed, async () => {
        for (let j = 0; j < methods.length; j++) {
          const m = methods[j];
          const out = new ReleaseWriter(root, `step-${k + 1}-${j}`, 'png');
          await out.open();
          try {
            // no workers here: they hold the original weights, not the randomized ones
            await m.def.run({ ...ctx, out, logger: quiet, pool: undefined }, m.opts);
            const byId = new Map(out.artifacts.map((a) => [a.id, a]));
            for (let i = 0; i < samples.length; i++) {
              const orig = m.maps.get(samples[i]);
              const art = orig && byId.get(orig.artifactId);
              if (!orig || !art?.raw) continue;
              const { data } = decodeNpy(new Uint8Array(await readFile(join(out.staging, art.raw.path))));
              if (data.length !== orig.raw.length) continue;
              abs[j][i][k] = spearman(orig.raw.map(Math.abs), data.map(Math.abs));
              signed[j][i][k] = spearman(orig.raw, data);
            }
          } catch (err) {
            logger.warn(`metrics: randomization: ${m.def.id} failed with ${counts[k]} layer(s) randomized: ${(err as Error).message.split('\n')[0]}`);
          } finally {
            await out.abort();
          }
          bar.tick();
        }
      });
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  bar.done();
  base.methods = methods.map((m, j): RandomizationMethod => {
    const meanAbs = counts.map((_, k) => round(meanOf(abs[j].map((s) => s[k]))));
    const meanSigned = counts.map((_, k) => round(meanOf(signed[j].map((s) => s[k]))));
    const final = meanAbs.at(-1) ?? null;
    const run = meanAbs.findIndex((v) => v === null || !(v > opts.threshold));
    const upTo = run === -1 ? counts.length : run;
    return {
      method: m.def.id,
      abs: meanAbs,
      signed: meanSigned,
      final,
      flagged: final !== null && final > opts.threshold,
      insensitiveUpTo: upTo === 0 ? 0 : counts[upTo - 1],
      samples: samples.map((id, i) => ({ id, abs: abs[j][i].map(round), signed: signed[j][i].map(round) }))
        .filter((s) => m.maps.has(s.id)),
    };
  });
  return base;
}

/**
 * The test as a metric: the evaluated methods that cost at most `maxPasses` model passes per
 * sample (or those listed in `methods`) are rerun at every cascade point; a method is flagged
 * `fail` when |map| stays correlated after the full cascade, `warn` when it stays correlated
 * while at least half of the weighted layers, from the top, are randomized.
 */
export const randomization = defineMetric({
  id: 'randomization',
  title: 'Model-parameter randomization test',
  paper: 'Adebayo et al. 2018, Sanity Checks for Saliency Maps',
  key: 'randomization',
  async run(ev, opts) {
    const { ctx, H, W, defs, maps, methodIds, titleOf } = ev;
    const { logger } = ctx;
    const costOf = (id: string) => {
      const d = defs.get(id);
      return d ? methodPasses(d.def, d.opts, [H, W]) : 1;
    };
    const costly = opts.methods ? [] : methodIds.filter((id) => costOf(id) > opts.maxPasses);
    const wanted = opts.methods ?? methodIds.filter((id) => !costly.includes(id));
    if (costly.length) {
      logger.info(`metrics: randomization test leaves out ${costly.map((id) => `${id} (${costOf(id)} passes per sample)`).join(', ')}: above metrics.randomization.maxPasses = ${opts.maxPasses}; list them in metrics.randomization.methods to test them`);
    }
    const evaluated: EvaluatedMethod[] = [];
    for (const id of wanted) {
      const d = defs.get(id);
      const m = maps.get(id);
      if (!m) { logger.warn(`metrics.randomization.methods: ${id} has no evaluated maps in this run; left out`); continue; }
      if (!d) { logger.info(`metrics: randomization: ${id} cannot be rerun here (its definition was not passed); left out`); continue; }
      evaluated.push({ def: d.def, opts: d.opts, maps: new Map([...m].map(([sid, s]) => [sid, { artifactId: s.artifact.id, raw: s.raw }])) });
    }
    const t0 = performance.now();
    const result = await randomizationTest(ctx, evaluated, opts, logger);
    if (costly.length) result.skipped = costly.map((id) => ({ method: id, passes: costOf(id) }));
    if (result.steps.length) logger.info(`metrics: randomization test in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
    const { steps } = result;
    const L = steps.at(-1)?.randomized ?? 0;
    for (const m of result.methods) {
      const t = opts.threshold;
      let flag: MetricsFlag | undefined;
      if (m.flagged) {
        flag = {
          method: m.method, metric: 'randomization', severity: 'fail',
          message: `its maps barely change when the model's weights are randomized: the mean Spearman correlation of |map| with the original is ${m.final!.toFixed(2)} after re-initialising all ${L} weighted layers (threshold ${t}). Such maps may show the input's structure rather than what the model learned (Adebayo et al. 2018 found this for guided backpropagation and Guided Grad-CAM).`,
        };
        logger.warn(`metrics: ${titleOf(m.method)} fails the randomization sanity check: ${flag.message}`);
      } else if (m.insensitiveUpTo > 0 && m.insensitiveUpTo >= L / 2) {
        const k = steps.findIndex((s) => s.randomized === m.insensitiveUpTo);
        flag = {
          method: m.method, metric: 'randomization', severity: 'warn',
          message: `its maps barely change while the top ${m.insensitiveUpTo} of ${L} weighted layers are randomized (mean Spearman correlation of |map| ${m.abs[k]!.toFixed(2)} with everything down to ${steps[k].layer} re-initialised, threshold ${t}); they only decorrelate (${m.final === null ? '—' : m.final.toFixed(2)}) once the lowest layers are randomized too. They depend little on what the higher layers learned (Adebayo et al. 2018 report this for guided backpropagation).`,
        };
        logger.warn(`metrics: ${titleOf(m.method)} is insensitive to the higher layers in the randomization test: ${flag.message}`);
      }
      if (flag) ev.flags.push(flag);
    }
    return result;
  },
});
