import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AstroIntegration } from 'astro';
import { listedFiles, loadManifest, releaseFile, releaseLocation } from '../lib/manifest.ts';
import { releaseFileSegments } from '../lib/paths.ts';
import { compareCopies } from '../lib/releases.ts';

/**
 * Copies the files the manifest lists (artifact paths, their raw data, sample images, the
 * summaries) from the release folder to `<outDir>/artifacts/<same relative path>`, and, for the
 * compare pages, exactly the pictures of other releases those pages show (to
 * `<outDir>/releases/<slug>/artifacts/<path>`, see lib/releases.ts), and nothing else from the
 * pipeline's output. A listed file of this release that is missing fails the build: a report with
 * holes in it is worse than no new report (other releases' missing files are left off their pages). For `astro build` the manifest is also checked at config time so
 * a bad release fails before any page is rendered; `astro preview` needs no release at all.
 */
export default function convlensArtifacts(): AstroIntegration {
  return {
    name: 'convlens-artifacts',
    hooks: {
      'astro:config:setup': ({ command }) => {
        if (command === 'build') loadManifest();
      },
      'astro:build:done': async ({ dir, logger }) => {
        const loc = releaseLocation();
        const files = listedFiles(loadManifest(loc));
        const outRoot = join(fileURLToPath(dir), 'artifacts');
        const missing: string[] = [];
        const queue = [...files];
        const worker = async () => {
          for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
            const to = join(outRoot, ...releaseFileSegments(f));
            await mkdir(dirname(to), { recursive: true });
            try {
              await copyFile(releaseFile(f, loc), to);
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code === 'ENOENT') missing.push(f);
              else throw err;
            }
          }
        };
        await Promise.all(Array.from({ length: Math.min(16, files.length) }, worker));
        const outDir = fileURLToPath(dir);
        const others = compareCopies(loc);
        const otherQueue = [...others];
        const otherWorker = async () => {
          for (let c = otherQueue.shift(); c !== undefined; c = otherQueue.shift()) {
            const to = join(outDir, ...c.to.split('/'));
            await mkdir(dirname(to), { recursive: true });
            await copyFile(c.from, to);
          }
        };
        await Promise.all(Array.from({ length: Math.min(16, others.length) }, otherWorker));
        if (missing.length > 0) {
          const shown = missing.slice(0, 10).join(', ') + (missing.length > 10 ? `, and ${missing.length - 10} more` : '');
          throw new Error(`${missing.length} file(s) listed in ${loc.manifestPath} are missing from the release folder: ${shown}`);
        }
        logger.info(`copied ${files.length} release files to artifacts/${others.length ? ` and ${others.length} files of other releases for the compare pages` : ''}`);
      },
    },
  };
}
