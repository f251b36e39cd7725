import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConvlensError } from '../errors.ts';
import type { ListContext } from './listing.ts';
import { mapLimit } from './map-limit.ts';

/** Paths given in the config or a list file, checked against the file system. */

/**
 * A config path against the config file's folder, as config.ts's resolveFromConfig does (not
 * imported: config.ts loads the backend and tfjs, which this module keeps out). URLs are refused.
 */
export function configPath(ctx: ListContext, p: string, key: string, configLabel: string): string {
  if (/^https?:\/\//i.test(p)) {
    throw new ConvlensError(`${configLabel}: ${key}: "${p}" is a URL; data is read from local files only`, {
      hint: 'Download the images and point the key at the local folder, list or files.',
    });
  }
  return resolve(ctx.config.dir, p);
}

/** Every path must be an existing file; reports the first few missing ones at once. */
export async function checkExist(items: { path: string; given: string; where: string; keyed?: boolean }[], origin: string, hint: string): Promise<void> {
  const ok = await mapLimit(items, 32, async (it) => (await stat(it.path).catch(() => undefined))?.isFile() ?? false);
  const missing = items.filter((_, i) => !ok[i]);
  if (missing.length === 0) return;
  const first = missing[0];
  const head = first.keyed ? `${origin}${first.where}` : `${origin}: ${first.where}`;
  const more = missing.length > 1
    ? ` (and ${missing.length - 1} more: ${missing.slice(1, 4).map((m) => `"${m.given}"`).join(', ')}${missing.length > 4 ? ', ...' : ''})`
    : '';
  throw new ConvlensError(`${head}: image "${first.given}" not found (looked for ${first.path})${more}`, { hint });
}

/** A file-system error's code (`ENOENT`), else its message. */
export function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? String(err);
}
