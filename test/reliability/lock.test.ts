/**
 * One run at a time per output folder: a lock file naming the holder. A second run fails at
 * once, naming the holder, or waits with --wait; a lock whose holder died is taken over with a
 * warning; the lock is gone after a run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { runReport } from '../../pipeline/run.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';

async function project() {
  const p = await makeTinyProject();
  await writeFile(p.config, 'release: r\nmodel: { path: model, labels: model/labels.txt }\ndata:\n  samples: { folder: images }\ncompute: { backend: wasm, workers: 0 }\nmetrics: { enabled: false }\nmethods:\n  class-visualization: { enabled: false }\n');
  await mkdir(p.outputDir, { recursive: true });
  return { ...p, lock: join(p.outputDir, '.convlens.lock') };
}

const holder = (pid: number) => `${JSON.stringify({ pid, host: hostname(), started: '2026-12-05T00:00:00.000Z' })}\n`;

describe('the output folder lock', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('a second run fails at once, naming the running one, and writes nothing', async () => {
    const p = await project();
    await writeFile(p.lock, holder(process.pid)); // a live process holds it
    const err = await runReport({ configFile: p.config, logger: silentLogger, site: false }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConvlensError);
    expect((err as Error).message).toMatch(new RegExp(`^viz\\.yaml: output\\.dir: another convlens run \\(pid ${process.pid} on .*, started 2026-12-05T00:00:00\\.000Z\\) is writing to `));
    expect((err as ConvlensError).hint).toMatch(/--wait/);
    expect(existsSync(join(p.outputDir, 'releases'))).toBe(false);
    expect(await readFile(p.lock, 'utf8')).toBe(holder(process.pid)); // not ours to remove
  }, 60_000);

  it('takes over a lock whose holder is dead, with a warning, and removes its own at the end', async () => {
    const p = await project();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(p.lock, holder(dead));
    const logger = new MemoryLogger();
    await runReport({ configFile: p.config, logger, site: false });
    expect(logger.text()).toMatch(new RegExp(`warn: .*\\.convlens\\.lock: taking over a lock left by pid ${dead} .*no longer running`));
    expect(existsSync(p.lock)).toBe(false);
    expect(existsSync(join(p.outputDir, 'releases', 'r', 'manifest.json'))).toBe(true);
  }, 60_000);

  it('with --wait, waits for the holder to finish, then runs', async () => {
    const p = await project();
    await writeFile(p.lock, holder(process.pid));
    const logger = new MemoryLogger();
    const freed = new Promise<void>((resolve) => setTimeout(() => { void rm(p.lock).then(() => resolve()); }, 1500));
    const t0 = performance.now();
    await runReport({ configFile: p.config, logger, site: false, wait: true });
    await freed;
    expect(performance.now() - t0).toBeGreaterThan(1400);
    expect(logger.text()).toMatch(new RegExp(`info: waiting for the convlens run with pid ${process.pid} to finish writing`));
    expect(existsSync(join(p.outputDir, 'releases', 'r', 'manifest.json'))).toBe(true);
    expect(existsSync(p.lock)).toBe(false);
  }, 60_000);
});
