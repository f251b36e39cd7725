import { readdir, realpath, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { ConvlensError } from '../errors.ts';
import { naturalCompare, stem } from './ids.ts';
import { resolveLabel } from './labels.ts';
import type { ListContext, Row } from './listing.ts';
import { configPath } from './paths.ts';

/**
 * A folder data source: `<folder>/<class>/**` images, the class being the top-level subfolder's
 * name, taken class-balanced under a limit.
 */

/** Extensions read from folders (case-insensitive). Lists and `files` may name any file sharp decodes. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'] as const;

export async function listFolder(folder: string, limit: number, ctx: ListContext, configLabel: string): Promise<Row[]> {
  const key = `${ctx.key}.folder`;
  const origin = `${configLabel}: ${key}`;
  const root = configPath(ctx, folder, key, configLabel);
  const st = await stat(root).catch(() => undefined);
  if (!st) {
    throw new ConvlensError(`${origin}: folder "${folder}" not found (looked for ${root})`, {
      hint: `Create it with one subfolder per class (${folder}/<class>/*.png|jpg|jpeg|webp) or fix ${key}; relative paths start at the folder holding ${configLabel}.`,
    });
  }
  if (!st.isDirectory()) {
    throw new ConvlensError(`${origin}: "${folder}" is a file, not a folder (${root})`, {
      hint: `Use ${ctx.key}.list for a CSV or JSON list of images, or ${ctx.key}.files for single images.`,
    });
  }
  const entries = await readdir(root, { withFileTypes: true });
  const groups: { name: string; label?: number; labelName?: string; files: string[] }[] = [];
  const loose: string[] = [];
  let unmatched: string[] = [];
  const walk: Walk = { seen: new Set([await realpath(root)]), loops: [], other: new Map() };
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const full = join(root, e.name);
    const kind = await entryKind(full, e);
    if (kind === 'file' && isImageName(e.name)) loose.push(e.name);
    else if (kind === 'file') countOther(walk, e.name);
    else if (kind === 'dir') {
      const files = await walkImages(full, '', walk);
      if (files.length === 0) continue;
      const lab = resolveLabel(e.name, ctx.classNames, { origin, folder: full });
      if (lab.unmatched) unmatched.push(e.name);
      groups.push({ name: e.name, label: lab.label, labelName: lab.labelName, files: files.sort(naturalCompare) });
    }
  }
  if (loose.length > 0) groups.push({ name: '', files: loose.sort(naturalCompare) });
  if (groups.length === 0) {
    throw new ConvlensError(`${origin}: no images in ${root} (looked for ${IMAGE_EXTENSIONS.join(', ')} in it and in its class subfolders)`, {
      hint: `Put images in ${folder}/<class>/, one subfolder per class, or point ${key} at the folder that holds them.`,
    });
  }
  if (walk.loops.length) {
    ctx.logger?.warn(`${origin}: ${walk.loops.length} symbolic link${walk.loops.length === 1 ? '' : 's'} lead${walk.loops.length === 1 ? 's' : ''} back into folders already listed (${walk.loops.slice(0, 3).join(', ')}${walk.loops.length > 3 ? ', ...' : ''}); each folder's images are listed once`);
  }
  if (walk.other.size) {
    const kinds = [...walk.other.entries()].sort((a, b) => b[1] - a[1]).map(([ext, n]) => `${n} ${ext}`);
    ctx.logger?.warn(`${origin}: skipped ${kinds.join(', ')} image file(s): folders are read for ${IMAGE_EXTENSIONS.join(', ')} only; convert them, or list them by name in a list file (sharp decodes most formats)`);
  }
  // Unlabelled loose images first, then classes by index, then by name.
  groups.sort((a, b) => (a.name === '' ? -1 : b.name === '' ? 1 : 0)
    || (a.label ?? Number.MAX_SAFE_INTEGER) - (b.label ?? Number.MAX_SAFE_INTEGER) || naturalCompare(a.name, b.name));
  unmatched = unmatched.sort(naturalCompare);
  if (unmatched.length > 0) {
    ctx.logger?.warn(`${origin}: class folders ${unmatched.slice(0, 5).join(', ')}${unmatched.length > 5 ? ', ...' : ''} are names, but no class names are known (model.labels is not set); they are shown as labels but not matched to model outputs. Set model.labels to a file with one class name per line to match them.`);
  }
  const take = balancedCounts(groups.map((g) => g.files.length), limit);
  const total = groups.reduce((a, g) => a + g.files.length, 0);
  if (take.reduce((a, b) => a + b, 0) < total) {
    ctx.logger?.debug(`${origin}: taking ${take.reduce((a, b) => a + b, 0)} of ${total} images, class-balanced (limit ${limit})`);
  }
  const rows: Row[] = [];
  groups.forEach((g, gi) => {
    for (const f of g.files.slice(0, take[gi])) {
      const rel = g.name ? `${g.name}/${f}` : f;
      rows.push({
        path: join(root, ...rel.split('/')),
        source: rel,
        idBase: g.name ? `${g.name}-${stem(f)}` : stem(f),
        origin,
        label: g.label,
        labelName: g.labelName,
      });
    }
  });
  return rows;
}

/**
 * How many to take from each class for `limit` in total: round-robin over the classes, so
 * k classes share the limit equally (limit/k each, the first limit%k getting one more) and a
 * class with fewer images gives its unused share to the others.
 */
export function balancedCounts(sizes: readonly number[], limit: number): number[] {
  const take = sizes.map(() => 0);
  let left = Math.min(limit, sizes.reduce((a, b) => a + b, 0));
  while (left > 0) {
    for (let i = 0; i < sizes.length && left > 0; i++) {
      if (take[i] < sizes[i]) { take[i]++; left--; }
    }
  }
  return take;
}

/** What a folder walk met besides images: real folders seen (symlink loops), skipped files by extension. */
interface Walk {
  seen: Set<string>;
  loops: string[];
  other: Map<string, number>;
}

/** Image formats folders may hold that convlens does not read from folders (warned about, not silently dropped). */
const SKIPPED_IMAGE_EXTENSIONS = new Set(['.gif', '.bmp', '.tif', '.tiff', '.heic', '.heif', '.avif', '.jxl', '.svg', '.ico', '.ppm', '.pgm', '.pbm', '.jp2']);

function countOther(walk: Walk, name: string): void {
  const ext = extname(name).toLowerCase();
  if (SKIPPED_IMAGE_EXTENSIONS.has(ext)) walk.other.set(ext, (walk.other.get(ext) ?? 0) + 1);
}

/**
 * Image files under `dir`, recursively, as `/`-joined paths relative to it. A folder reached a
 * second time (a symbolic link back into the tree) is not walked again.
 */
async function walkImages(dir: string, prefix: string, walk: Walk): Promise<string[]> {
  const real = await realpath(dir);
  if (walk.seen.has(real) && prefix !== '') {
    walk.loops.push(dir);
    return [];
  }
  walk.seen.add(real);
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const full = join(dir, e.name);
    const kind = await entryKind(full, e);
    if (kind === 'file' && isImageName(e.name)) out.push(prefix + e.name);
    else if (kind === 'file') countOther(walk, e.name);
    else if (kind === 'dir') {
      const realSub = await realpath(full);
      if (walk.seen.has(realSub)) { walk.loops.push(full); continue; }
      out.push(...await walkImages(full, `${prefix}${e.name}/`, walk));
    }
  }
  return out;
}

async function entryKind(full: string, e: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): Promise<'file' | 'dir' | 'other'> {
  if (e.isFile()) return 'file';
  if (e.isDirectory()) return 'dir';
  if (e.isSymbolicLink()) {
    const s = await stat(full).catch(() => undefined);
    return s?.isFile() ? 'file' : s?.isDirectory() ? 'dir' : 'other';
  }
  return 'other';
}

const isImageName = (name: string) => (IMAGE_EXTENSIONS as readonly string[]).includes(extname(name).toLowerCase());
