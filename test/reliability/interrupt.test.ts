/**
 * Interrupted runs leave nothing behind: SIGINT / SIGTERM end the CLI with one line, exit 130 /
 * 143, no staging folder and no lock; and the next run sweeps what a hard kill left (marked
 * staging folders, a swap stopped between its renames, the site build's temp folders and cache),
 * rolling back a release that was only set aside. A release the user named `x.old-12345678` is
 * neither touched nor hidden by the site.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { runReport } from '../../pipeline/run.ts';
import { listReleases } from '../../src/lib/releases.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';

const BIN = resolve(import.meta.dirname, '../../bin/convlens.mjs');

/** A tiny project whose report takes a while (a long class visualization), so a signal lands mid-run. */
async function slowProject() {
  const p = await makeTinyProject();
  await writeFile(p.config, 'release: r\nmodel: { path: model, labels: model/labels.txt }\ndata:\n  samples: { folder: images }\ncompute: { backend: wasm, workers: 0 }\nmetrics: { enabled: false }\nmethods:\n  class-visualization: { steps: 100000, classes: [0] }\n');
  return p;
}

async function waitFor(check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('timed out');
}

describe('interrupted runs', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal}: one line, exit ${code}, no staging folder and no lock left`, async () => {
      const p = await slowProject();
      const child = spawn(process.execPath, [BIN, 'report', '--config', p.config, '--no-site'], { env: { ...process.env, CI: 'true' } });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += String(d); });
      const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      const releases = join(p.outputDir, 'releases');
      await waitFor(async () => (await readdir(releases).catch(() => [] as string[])).some((e) => e.includes('.staging-')), 60_000);
      await new Promise((r) => setTimeout(r, 300));
      child.kill(signal);
      expect(await exited).toBe(code);
      expect(stderr).toContain(`convlens: interrupted (${signal}); removing what the run had not finished`);
      expect(stderr).not.toMatch(/unexpected error/);
      expect(await readdir(releases)).toEqual([]);
      expect(existsSync(join(p.outputDir, '.convlens.lock'))).toBe(false);
    }, 120_000);
  }

  it('the next run sweeps what a hard kill left and puts back a release that was set aside', async () => {
    const p = await makeTinyProject();
    await writeFile(p.config, 'release: r\nmodel: { path: model, labels: model/labels.txt }\ndata:\n  samples: { folder: images }\ncompute: { backend: wasm, workers: 0 }\nmetrics: { enabled: false }\nmethods:\n  class-visualization: { enabled: false }\n');
    await runReport({ configFile: p.config, logger: silentLogger, site: false });
    const releases = join(p.outputDir, 'releases');
    // what a kill -9 leaves: a marked staging folder, release "keep" set aside mid-swap, site temp and cache folders
    await mkdir(join(releases, '.r.staging-0badf00d'));
    await writeFile(join(releases, '.r.staging-0badf00d', '.convlens-staging'), '1\n');
    await mkdir(join(releases, '.unmarked.staging-12345678'));
    await cp(join(releases, 'r'), join(releases, '.keep.old-0123abcd'), { recursive: true });
    await cp(join(releases, 'r'), join(releases, 'x.old-12345678'), { recursive: true });
    await mkdir(join(p.outputDir, '.site.0123456789ab.tmp'));
    await mkdir(join(p.outputDir, '.convlens-cache', 'astro-1'), { recursive: true });
    // a staged Astro build of a process that is gone (builds run inside the convlens folder)
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    const staged = resolve(import.meta.dirname, '../../node_modules/.cache/convlens', `site-${deadPid}-0123456789ab`);
    const live = resolve(import.meta.dirname, '../../node_modules/.cache/convlens', `site-${process.pid}-0123456789ab`);
    await mkdir(staged, { recursive: true });
    await mkdir(live, { recursive: true });
    const logger = new MemoryLogger();
    await runReport({ configFile: p.config, logger, site: false });
    const left = (await readdir(releases)).sort();
    expect(left).toEqual(['.unmarked.staging-12345678', 'keep', 'r', 'x.old-12345678']);
    expect(JSON.parse(await readFile(join(releases, 'keep', 'manifest.json'), 'utf8')).release).toBe('r');
    expect(logger.text()).toMatch(/info: removed 1 unfinished release left by interrupted runs/);
    expect(logger.text()).toMatch(/warn: release keep: put back the copy an interrupted run had set aside/);
    expect(existsSync(join(p.outputDir, '.site.0123456789ab.tmp'))).toBe(false);
    expect(existsSync(join(p.outputDir, '.convlens-cache'))).toBe(false);
    expect(existsSync(staged)).toBe(false);
    expect(existsSync(live)).toBe(true); // a running process's build is left alone
    await rm(live, { recursive: true });
    // the site lists a release named like a swap leftover; it hides only hidden folders
    const names = listReleases({ outputDir: p.outputDir, release: 'r', releaseDir: join(releases, 'r'), manifestPath: join(releases, 'r', 'manifest.json') }).map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['r', 'keep', 'x.old-12345678']));
    expect(names.some((n) => n.startsWith('.'))).toBe(false);
  }, 120_000);
});
