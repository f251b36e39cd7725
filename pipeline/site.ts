import { existsSync, rmSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { recoverSwaps, swapDir } from './fs-atomic.ts';
import { onInterrupt } from './interrupt.ts';
import { processAlive } from './lock.ts';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ConvlensError } from './errors.ts';
import type { Logger } from './logger.ts';
import { parseManifest } from './manifest.ts';

/**
 * Builds the static report site for one release with Astro (astro.config.mjs at the repo root,
 * pages in src/). The site reads only the release's manifest.json and the files it lists, plus,
 * for the releases index and the compare pages, the other `<outputDir>/releases/<name>/manifest.json`
 * and exactly the files of theirs that the compare pages show (copied to releases/<slug>/artifacts/).
 *
 * Conventions:
 * - The build goes to a hidden temp folder beside `siteDir` and is swapped in by rename, so a
 *   failed build leaves the previous site whole and readers never see half a site.
 * - Settings reach the Astro config through CONVLENS_* environment variables, and Astro runs with
 *   the repo root as the current directory (see enterRepoRoot); both are restored afterwards,
 *   and builds in one process run one at a time because of that.
 * - `base` only tells Astro where the site will be served; every link in the site is relative,
 *   so the output also works from file:// and under any other base.
 */
export interface BuildSiteOptions {
  /** The pipeline's output folder (holding `releases/<release>/manifest.json`). */
  outputDir: string;
  release: string;
  /** URL path the site is served under, e.g. `/` or `/REPO/` for GitHub Pages. */
  base: string;
  /** Defaults to `<outputDir>/site`. */
  siteDir?: string;
  logger: Logger;
}

export interface BuiltSite {
  siteDir: string;
  /** HTML pages written. */
  pages: number;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

let queue: Promise<unknown> = Promise.resolve();

export function buildSite(opts: BuildSiteOptions): Promise<BuiltSite> {
  const run = queue.then(() => buildSiteNow(opts));
  queue = run.catch(() => undefined);
  return run;
}

async function buildSiteNow(opts: BuildSiteOptions): Promise<BuiltSite> {
  const { logger } = opts;
  const outputDir = resolve(opts.outputDir);
  const siteDir = resolve(opts.siteDir ?? join(outputDir, 'site'));
  const base = normalizeBase(opts.base);
  await checkRelease(outputDir, opts.release);

  const started = performance.now();
  const id = randomBytes(6).toString('hex');
  const tmpDir = join(dirname(siteDir), `.${basename(siteDir)}.${id}.tmp`);
  const staged = !isInside(repoRoot, tmpDir);
  const astroOut = staged ? join(STAGE_ROOT, `site-${process.pid}-${id}`) : tmpDir;
  const cacheDir = join(outputDir, CACHE, `astro-${id}`);
  await mkdir(cacheDir, { recursive: true });
  const undo = onInterrupt(() => { for (const d of [tmpDir, join(outputDir, CACHE), ...(staged ? [astroOut] : [])]) rmSync(d, { recursive: true, force: true }); });
  const restoreEnv = setEnv({
    CONVLENS_OUTPUT_DIR: outputDir,
    CONVLENS_RELEASE: opts.release,
    CONVLENS_SITE_DIR: astroOut,
    CONVLENS_BASE: base,
    ASTRO_TELEMETRY_DISABLED: '1',
    NODE_ENV: 'production',
  });
  logger.debug(`site: building release ${opts.release} with Astro into ${astroOut} (base ${base})`);
  let restoreCwd: (() => void) | undefined;
  try {
    restoreCwd = enterRepoRoot();
    const { build } = await import('astro');
    await build({ root: repoRoot, outDir: astroOut, base, cacheDir, logLevel: 'warn', mode: 'production' });
    if (staged) await cp(astroOut, tmpDir, { recursive: true });
    const pages = await countPages(tmpDir);
    if (pages === 0) throw new Error('Astro wrote no pages');
    await swapDir(tmpDir, siteDir);
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    logger.info(`site: ${pages} pages in ${secs}s -> ${siteDir}`);
    return { siteDir, pages };
  } catch (err) {
    await rm(tmpDir, { recursive: true, force: true }).catch(() => undefined);
    if (err instanceof ConvlensError) throw err;
    const e = err as Error & { hint?: string };
    const kept = existsSync(join(siteDir, 'index.html')) ? `The previous site in ${siteDir} is unchanged.` : 'No site was written.';
    throw new ConvlensError(`building the report site for release "${opts.release}" failed: ${firstLines(e?.message ?? String(err))}`, {
      hint: `${kept} ${(typeof e?.hint === 'string' && e.hint) || 'Run again with --debug for the full error; if a listed file is missing or the manifest is wrong, re-run the pipeline for this release.'}`,
      cause: err,
    });
  } finally {
    restoreCwd?.();
    restoreEnv();
    await rm(join(outputDir, CACHE), { recursive: true, force: true }).catch(() => undefined);
    if (staged) await rm(astroOut, { recursive: true, force: true }).catch(() => undefined);
    undo();
  }
}

/** Where staged builds go inside the convlens folder (Astro must build inside it; see enterRepoRoot). */
const STAGE_ROOT = join(repoRoot, 'node_modules', '.cache', 'convlens');
/** Astro's cache during a build, under the output folder. */
const CACHE = '.convlens-cache';

/**
 * Removes what a killed site build left (call while holding the output lock): the temp folders
 * beside the site, Astro's cache under the output folder, and staged builds under the convlens
 * folder whose process is gone; and finishes or rolls back an interrupted swap of the site.
 * Returns what it did, for the log.
 */
export async function sweepSite(outputDir: string, siteDir = join(outputDir, 'site')): Promise<string[]> {
  const done: string[] = [];
  const parent = dirname(resolve(siteDir));
  if ((await recoverSwaps(parent)).length) done.push(`put back ${siteDir} from an interrupted swap`);
  const tmp = new RegExp(`^\\.${basename(siteDir).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.[0-9a-f]{12}\\.tmp$`);
  for (const e of await readdir(parent).catch(() => [] as string[])) {
    if (tmp.test(e)) {
      await rm(join(parent, e), { recursive: true, force: true });
      done.push(`removed ${join(parent, e)}`);
    }
  }
  if (existsSync(join(outputDir, CACHE))) {
    await rm(join(outputDir, CACHE), { recursive: true, force: true });
    done.push(`removed ${join(outputDir, CACHE)}`);
  }
  for (const e of await readdir(STAGE_ROOT).catch(() => [] as string[])) {
    const pid = Number(/^site-(\d+)-[0-9a-f]+$/.exec(e)?.[1]);
    if (!pid || processAlive(pid)) continue;
    await rm(join(STAGE_ROOT, e), { recursive: true, force: true });
    done.push(`removed ${join(STAGE_ROOT, e)}`);
  }
  return done;
}

/**
 * Astro bundles the pages into chunks that import its dependencies by bare name, writes them into
 * its outDir when that is inside the current directory and into a shared `<cwd>/.astro/`
 * otherwise, then imports them. So the build runs with the repo root as the current directory
 * (restored afterwards; buildSite resolves its paths first), and into a folder inside the repo:
 * the temp folder beside the site when the site is in the repo, else a private staging folder
 * under node_modules/.cache that is copied beside the site afterwards. Concurrent builds (test
 * workers, two CLI runs) thus never share a staging folder.
 */
function enterRepoRoot(): () => void {
  const before = process.cwd();
  if (before === repoRoot) return () => undefined;
  try {
    process.chdir(repoRoot);
  } catch (err) {
    throw new ConvlensError(`cannot build the site from ${before}: Astro must run with the convlens folder (${repoRoot}) as the current directory`, {
      hint: 'Run convlens from its own folder, or outside a worker thread (process.chdir is not available there).',
      cause: err,
    });
  }
  return () => process.chdir(before);
}

function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/** Fails early, with the pipeline's own words, when there is no valid manifest to build from. */
async function checkRelease(outputDir: string, release: string): Promise<void> {
  if (!release || release === '.' || release === '..' || /[\\/]/.test(release)) {
    throw new ConvlensError(`not a release name: ${JSON.stringify(release)}`, {
      hint: 'A release is a folder name under <output>/releases/, e.g. 2025-11-25-demo.',
    });
  }
  const manifestPath = join(outputDir, 'releases', release, 'manifest.json');
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch {
    throw new ConvlensError(`no manifest for release "${release}" at ${manifestPath}`, {
      hint: 'Run `convlens report` for this release first, or check the output folder and release name.',
    });
  }
  try {
    parseManifest(JSON.parse(text), manifestPath);
  } catch (err) {
    throw new ConvlensError(`the manifest of release "${release}" is not valid:\n${(err as Error).message}`, {
      hint: 'The pipeline writes manifests that pass this check; re-run it, or compare the pipeline and site versions.',
      cause: err,
    });
  }
}

/** HTML pages in a built site; copied release files (artifacts/, releases/<slug>/artifacts/) do not count. */
async function countPages(dir: string): Promise<number> {
  let n = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.html')) continue;
    const parts = relative(dir, join(entry.parentPath, entry.name)).split(sep);
    if (parts[0] !== 'artifacts' && !(parts[0] === 'releases' && parts[2] === 'artifacts')) n++;
  }
  return n;
}

export function normalizeBase(base: string): string {
  const trimmed = base.trim().replace(/^\/+|\/+$/g, '');
  return trimmed ? `/${trimmed}/` : '/';
}

function setEnv(vars: Record<string, string>): () => void {
  const saved = Object.keys(vars).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, vars);
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

function firstLines(text: string, n = 12): string {
  const lines = text.split('\n');
  return lines.length > n ? `${lines.slice(0, n).join('\n')}\n...` : text;
}
