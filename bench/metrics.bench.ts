/**
 * What the trust metrics cost beside the maps, on a real 224-px model: Darknet Tiny and the
 * photos of ../shared/fixtures (read in place).
 *
 *   npx tsx bench/metrics.bench.ts [count] [--backend wasm|auto|cpu] [--keep]
 *   npm run bench -- metrics [count]
 *
 * count: how many photos to explain (1-12, default 3: chelsea.png, coffee.png, eagle.jpg, then
 * the other photos in name order). --backend: compute.backend (default wasm, the backend the
 * README figures are for). --keep: keep the temporary folder with viz.yaml and the release.
 *
 * It writes a viz.yaml in a temporary folder (output.dir inside it): Darknet Tiny, the photos, no
 * dataset, input.scale 1/255, every per-sample map method at its default options, and the methods
 * that are not per-sample attribution maps switched off (model-summary, dataset-predictions,
 * filters, activations, top-patches, embedding, class-visualization); `metrics` at its defaults.
 * It runs the report once through `runReport` (no site, quiet logger) and prints, from the
 * release's manifest.json `timings` of that one run: each stage's time, the sum of the map
 * methods, the metrics stage, and the ratio metrics / maps.
 * The logger's progress bars split the metrics stage into deletion, insertion and the
 * randomization cascade; the cascade's ticks (one per method per step) give each method's
 * rerun cost next to its map time. Then the wall and CPU time of the run, the sample count and
 * the effective metrics settings (the parsed config and metrics/metrics.json of the release).
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../pipeline/config.ts';
import type { Logger, Progress } from '../pipeline/logger.ts';
import type { Manifest } from '../pipeline/manifest.ts';
import type { MetricsJson } from '../pipeline/metrics/types.ts';
import { runReport } from '../pipeline/run.ts';

const FIXTURES = resolve(import.meta.dirname, '../../shared/fixtures');
const MODEL = resolve(FIXTURES, 'darknet-tiny');
const PHOTOS = resolve(FIXTURES, 'photos');
const FIRST = ['chelsea.png', 'coffee.png', 'eagle.jpg'];
/** Methods that are not per-sample attribution maps, or that dominate for other reasons. */
const OFF = ['model-summary', 'dataset-predictions', 'filters', 'activations', 'top-patches', 'embedding', 'class-visualization'];

interface Bar { label: string; total: number; start: number; end?: number; ticks: number[] }

/** Prints nothing while the report runs; keeps the records and times every progress bar. */
class RecordingLogger implements Logger {
  readonly warnings: string[] = [];
  readonly infos: string[] = [];
  readonly bars: Bar[] = [];
  info(msg: string) { this.infos.push(msg); }
  warn(msg: string) { this.warnings.push(msg); }
  debug() {}
  progress(label: string, total: number): Progress {
    const bar: Bar = { label, total, start: performance.now(), ticks: [] };
    this.bars.push(bar);
    return {
      tick: () => { bar.ticks.push(performance.now()); },
      done: () => { bar.end = performance.now(); },
    };
  }
}

function parseArgs(argv: string[]) {
  let count = FIRST.length;
  let backend = 'wasm';
  let keep = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--keep') keep = true;
    else if (a === '--backend') backend = argv[++i] ?? '';
    else if (a.startsWith('--backend=')) backend = a.slice('--backend='.length);
    else if (/^\d+$/.test(a)) count = Number(a);
    else fail(`unknown argument "${a}"; usage: tsx bench/metrics.bench.ts [count 1-12] [--backend wasm|auto|cpu] [--keep]`);
  }
  return { count, backend, keep };
}

function fail(msg: string): never {
  console.error(`metrics bench: ${msg}`);
  process.exit(1);
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const pad = (v: string, n: number) => v.padEnd(n);
const lpad = (v: string, n: number) => v.padStart(n);

async function main() {
  const { count, backend, keep } = parseArgs(process.argv.slice(2));
  if (!existsSync(join(MODEL, 'model.json')) || !existsSync(join(MODEL, 'labels.txt')) || !existsSync(PHOTOS)) {
    fail(`Darknet Tiny or the photos not found under ${FIXTURES} (expected darknet-tiny/model.json, darknet-tiny/labels.txt and photos/)`);
  }
  const available = readdirSync(PHOTOS).filter((f) => /\.(png|jpe?g|webp)$/i.test(f)).sort();
  const order = [...FIRST.filter((f) => available.includes(f)), ...available.filter((f) => !FIRST.includes(f))];
  if (!(count >= 1 && count <= order.length)) fail(`count must be 1-${order.length} (photos in ${PHOTOS}); got ${count}`);
  const photos = order.slice(0, count);

  const dir = await mkdtemp(join(tmpdir(), 'convlens-metrics-bench-'));
  const vizPath = join(dir, 'viz.yaml');
  const viz = {
    release: 'bench',
    model: { path: MODEL, name: 'Darknet Tiny', labels: join(MODEL, 'labels.txt') },
    input: { scale: 1 / 255 },
    data: { samples: { files: photos.map((f) => join(PHOTOS, f)) } },
    compute: { backend },
    output: { dir: join(dir, 'output') },
    methods: Object.fromEntries(OFF.map((id) => [id, { enabled: false }])),
  };
  await writeFile(vizPath, stringify(viz));

  console.log(`Darknet Tiny (${MODEL}), ${count} photo${count === 1 ? '' : 's'}: ${photos.join(', ')}`);
  console.log(`Node ${process.version}, ${process.platform}/${process.arch}; compute.backend ${backend}; viz.yaml ${vizPath}`);
  console.log('running the report (no site); this can take minutes ...\n');

  const logger = new RecordingLogger();
  const w0 = performance.now();
  const c0 = process.cpuUsage();
  let releaseDir: string;
  try {
    ({ releaseDir } = await runReport({ configFile: vizPath, site: false, logger }));
  } catch (err) {
    const msg = (err instanceof Error ? err.message : String(err)).slice(0, 2000);
    console.error(`metrics bench: the report failed: ${msg}`);
    if (logger.warnings.length) console.error(`warnings:\n  ${logger.warnings.join('\n  ')}`);
    if (!keep) await rm(dir, { recursive: true, force: true });
    process.exit(1);
  }
  const wall = performance.now() - w0;
  const cpu = process.cpuUsage(c0);

  const manifest = JSON.parse(await readFile(join(releaseDir, 'manifest.json'), 'utf8')) as Manifest;
  const methodIds = new Set(manifest.methods.map((m) => m.id).filter((id) => id !== 'metrics'));
  const kind = (stage: string) => (methodIds.has(stage) ? 'map' : stage.startsWith('metrics') ? 'metrics' : '');

  // ---- the timings of the run ----
  console.log(`== manifest.json timings (backend ${manifest.backend.name} / tfjs ${manifest.backend.tfjsBackend} ${manifest.backend.tfjsVersion})`);
  console.log(`  ${pad('stage', 28)} ${lpad('time', 9)}  ${lpad('count', 5)}  kind`);
  for (const t of manifest.timings) {
    console.log(`  ${pad(t.stage, 28)} ${lpad(s(t.ms), 9)}  ${lpad(t.count === undefined ? '' : String(t.count), 5)}  ${kind(t.stage)}`);
  }
  const maps = manifest.timings.filter((t) => methodIds.has(t.stage));
  const mapsMs = maps.reduce((a, t) => a + t.ms, 0);
  const metricsMs = manifest.timings.find((t) => t.stage === 'metrics')?.ms ?? 0;

  console.log(`\n== maps vs metrics (this run)`);
  console.log(`  maps (${maps.length} methods)            ${lpad(s(mapsMs), 9)}`);
  console.log(`  metrics                       ${lpad(s(metricsMs), 9)}`);
  // the manifest times the metrics stage as a whole; its progress bars split it
  const bars = logger.bars.filter((b) => b.label.startsWith('metrics') && b.end !== undefined);
  if (bars.length) {
    const barMs = bars.reduce((a, b) => a + (b.end! - b.start), 0);
    for (const b of bars) console.log(`    ${pad(b.label, 44)} ${lpad(s(b.end! - b.start), 9)}  (progress bar)`);
    console.log(`    ${pad('rest (read maps, fill, blur, json, curve images)', 44)} ${lpad(s(Math.max(0, metricsMs - barMs)), 9)}`);
  }
  console.log(`  ratio metrics / maps          ${lpad(mapsMs > 0 ? `${(metricsMs / mapsMs).toFixed(1)}x` : 'n/a', 9)}`);

  // ---- metrics.json: effective settings and the per-method randomization cost ----
  const art = manifest.artifacts.find((a) => a.method === 'metrics' && a.id === 'metrics/metrics');
  const json = art ? (JSON.parse(await readFile(join(releaseDir, art.path), 'utf8')) as MetricsJson) : undefined;
  const cascade = bars.find((b) => b.label.startsWith('metrics: randomization'));
  const rmethods = json?.randomization?.methods.map((m) => m.method) ?? [];
  const stepsN = json?.randomization?.steps.length ?? 0;
  if (cascade && rmethods.length && cascade.ticks.length === stepsN * rmethods.length) {
    // One tick after each method's rerun at each step; re-initialising the weights of a step
    // falls in the first method's interval.
    const per = new Map(rmethods.map((m) => [m, 0]));
    cascade.ticks.forEach((t, i) => {
      const m = rmethods[i % rmethods.length];
      per.set(m, per.get(m)! + t - (i === 0 ? cascade.start : cascade.ticks[i - 1]));
    });
    console.log(`\n== per method: map vs its randomization reruns (${stepsN} steps; from the cascade's progress ticks)`);
    console.log(`  ${pad('method', 24)} ${lpad('map', 9)} ${lpad('reruns', 9)} ${lpad('ratio', 7)}`);
    for (const t of maps) {
      const r = per.get(t.stage);
      console.log(`  ${pad(t.stage, 24)} ${lpad(s(t.ms), 9)} ${lpad(r === undefined ? '-' : s(r), 9)} ${lpad(r === undefined || t.ms === 0 ? '' : `${(r / t.ms).toFixed(1)}x`, 7)}`);
    }
  }

  console.log(`\n== run`);
  console.log(`  wall ${s(wall)}, cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s (user ${(cpu.user / 1e6).toFixed(1)} s, system ${(cpu.system / 1e6).toFixed(1)} s)`);
  console.log(`  samples ${manifest.samples.length}: ${manifest.samples.map((x) => `${x.id} -> ${x.predictions[0].name} (${(100 * x.predictions[0].probability).toFixed(0)}%)`).join(', ')}`);

  const config = (await loadConfig(vizPath)).config;
  console.log(`\n== metrics settings`);
  console.log(`  config: ${JSON.stringify(config.metrics)}`);
  if (!json) {
    console.log('  no metrics/metrics.json in the release (metrics off, or no per-sample maps)');
  } else {
    const evaluated = json.methods.filter((m) => !m.baseline).map((m) => m.id);
    const baselines = json.methods.filter((m) => m.baseline).map((m) => (m.grid ? `${m.id} (${m.grid.join('x')})` : m.id));
    console.log(`  evaluated methods (${evaluated.length}): ${evaluated.join(', ')}`);
    console.log(`  random baselines (${baselines.length}): ${baselines.join(', ')}`);
    if (json.deletion) console.log(`  deletion: ${json.deletion.steps} steps of ${json.deletion.pixelsPerStep} px, fill from ${json.deletion.fill.source}, ${json.deletion.samples.reduce((a, x) => a + x.methods.length, 0)} curves`);
    if (json.insertion) console.log(`  insertion: ${json.insertion.steps} steps of ${json.insertion.pixelsPerStep} px, sigma ${json.insertion.sigma}, ${json.insertion.samples.reduce((a, x) => a + x.methods.length, 0)} curves`);
    const r = json.randomization;
    if (r) {
      console.log(`  randomization: ${r.steps.length ? `${r.steps.length} steps over ${r.layers.length} weighted layers (randomized from the top: ${r.steps.map((x) => x.randomized).join(', ')}), ${r.methods.length} methods rerun, seed ${r.seed}, threshold ${r.threshold}` : `not run: ${r.note}`}`);
      const flagged = json.flags.map((f) => `${f.method} (${f.severity})`);
      if (flagged.length) console.log(`  flags: ${flagged.join(', ')}`);
    }
    if (json.pointingGame) console.log(`  pointing game: ${json.pointingGame.boxes.length} samples with a box`);
  }
  if (logger.warnings.length) console.log(`\nwarnings during the run:\n  ${logger.warnings.map((w) => w.slice(0, 300)).join('\n  ')}`);

  if (keep) console.log(`\nkept ${dir}`);
  else await rm(dir, { recursive: true, force: true });
}

await main();
