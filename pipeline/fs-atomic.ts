import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Writes a file atomically: to a temp file beside it, then rename. A reader (the site build,
 * another run) sees the old file or the new one, never half of one.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** The name a folder being replaced gets while swapDir runs: hidden, and recognisably ours. */
export function asideName(target: string): string {
  return join(dirname(target), `.${basename(target)}.old-${randomBytes(4).toString('hex')}`);
}

const ASIDE = /^\.(.+)\.old-[0-9a-f]{8}$/;

/**
 * Replaces the folder `target` with `fresh` by two renames: the old folder is moved aside (to
 * `.<name>.old-<hex>`), the fresh one takes its name, and the old one is removed only once the
 * new one is in place; if the second rename fails the old folder is put back, so `target` is
 * always whole. A process killed between the renames leaves the old folder aside: recoverSwaps
 * puts it back on the next run.
 */
export async function swapDir(fresh: string, target: string): Promise<void> {
  const old = asideName(target);
  let hadOld = true;
  try {
    await rename(target, old);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    hadOld = false;
  }
  try {
    await rename(fresh, target);
  } catch (err) {
    if (hadOld) await rename(old, target).catch(() => undefined);
    throw err;
  }
  if (hadOld) await rm(old, { recursive: true, force: true });
}

/**
 * Finishes or rolls back swaps that a killed process left in `dir`: a folder set aside
 * (`.<name>.old-<hex>`) whose `<name>` exists is the old copy of a finished swap and is removed;
 * one whose `<name>` is missing was interrupted between the renames and is put back. Returns
 * the names put back.
 */
export async function recoverSwaps(dir: string): Promise<string[]> {
  const restored: string[] = [];
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return restored;
  }
  for (const e of entries.sort()) {
    const m = ASIDE.exec(e);
    if (!m) continue;
    const target = join(dir, m[1]);
    if (await stat(target).catch(() => undefined)) {
      await rm(join(dir, e), { recursive: true, force: true });
    } else {
      await rename(join(dir, e), target);
      restored.push(m[1]);
    }
  }
  return restored;
}
