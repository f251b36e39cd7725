import sharp from 'sharp';
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Config, LoadedConfig } from './config.ts';
import { ConvlensError, nearest } from './errors.ts';
import type { Logger } from './logger.ts';

/**
 * The data layer: which images a run uses (`data.samples`, `data.dataset`) and how each becomes
 * model input (`input`). No tf here: batches are plain typed arrays, NHWC float32, so a caller
 * makes a tensor with `tf.tensor4d(batch.input, batch.shape)` and disposes it itself.
 */

/** Extensions read from folders (case-insensitive). Lists and `files` may name any file sharp decodes. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'] as const;

/** `data.samples` or `data.dataset`, as validated by the config schema (limit optional here). */
export interface DataSource {
  folder?: string;
  list?: string;
  files?: FileEntry[];
  limit?: number;
}

/** One `files` entry: a path, or a path with its label. */
export type FileEntry = string | { path: string; label?: string | number };

export type DataKey = 'data.samples' | 'data.dataset';

export interface ListContext {
  /** Where the config file is: relative paths resolve against `dir`; `file`'s name prefixes errors. */
  config: Pick<LoadedConfig, 'dir' | 'file'>;
  /** Which config section `source` is; errors name e.g. `data.samples.folder`. */
  key: DataKey;
  /** Class names in model output order (from `model.labels`); index i is output i. */
  classNames?: readonly string[];
  logger?: Logger;
}

export interface ImageRef {
  /** Stable slug `^[a-z0-9][a-z0-9-]*$`, unique within one listing. */
  id: string;
  /** Absolute path of the image file. */
  path: string;
  /** The name as the user gave it: relative to the folder, as written in the list, or as in `files`. */
  source: string;
  /** Class index (model output index), when known. */
  label?: number;
  /** Class name: the folder/list label as written, or the class name of an index label. */
  labelName?: string;
  /** Error prefix naming where the ref came from, e.g. `viz.yaml: data.samples.folder`. */
  origin?: string;
  /**
   * Bounding box of the object, [x0, y0, x1, y1] in the original image's pixels (edges: the box
   * spans x0 <= x <= x1, y0 <= y <= y1 with pixel (u, v) covering [u, u+1] x [v, v+1]), from a
   * list's `box` column or field; `boxToInput` maps it to the model input.
   */
  box?: Box;
}

/** [x0, y0, x1, y1], x0 < x1 and y0 < y1, in continuous pixel coordinates. */
export type Box = [number, number, number, number];

/** The `input` section with every default filled in from the model. */
export interface Preprocessing {
  /** [height, width] of the model input. */
  size: [number, number];
  channels: 1 | 3;
  /** Order of the channels in the model input; `display` is always RGB. */
  channelOrder: 'rgb' | 'bgr';
  scale: number;
  /** Length 1 (every channel) or `channels`, indexed in model channel order (after channelOrder). */
  mean: number[];
  std: number[];
  resize: 'fill' | 'cover' | 'contain';
  /** Rotate by the EXIF orientation before anything else (input.exifOrientation: apply). */
  exifOrientation?: 'apply' | 'ignore';
}

export interface PreprocessedImage {
  /** h*w*c float32, HWC, `(pixel * scale - mean[c]) / std[c]`. */
  input: Float32Array;
  /** h*w*3 RGB, 8-bit: the image as the model saw it (before normalisation), gray replicated. */
  display: Uint8Array;
}

export interface ImageBatch {
  refs: ImageRef[];
  /** n*h*w*c float32, NHWC. */
  input: Float32Array;
  shape: [number, number, number, number];
  /** One h*w*3 RGB image per ref. */
  display: Uint8Array[];
}

export interface LoadOptions {
  /** Images decoded at once (sharp runs them on libuv's thread pool). */
  concurrency?: number;
}

const DEFAULT_CONCURRENCY = Math.max(2, Math.min(8, availableParallelism()));

// ---------------------------------------------------------------------------------------------
// Class names and labels

/**
 * Reads a labels file: one class name per line, in model output order; lines are trimmed and
 * trailing empty lines dropped. An empty line in the middle is an error (it would shift every
 * later class by one).
 */
export async function readLabelsFile(path: string, key = 'model.labels', configLabel = 'viz.yaml'): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConvlensError(`${configLabel}: ${key}: cannot read labels file "${path}" (${errCode(err)})`, {
      hint: `Point ${key} at a text file with one class name per line, in the model's output order; relative paths start at the folder holding ${configLabel}.`,
    });
  }
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/).map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const empty = lines.indexOf('');
  if (empty >= 0) {
    throw new ConvlensError(`${configLabel}: ${key}: ${path} line ${empty + 1} is empty`, {
      hint: 'A labels file has one class name per line, in output order; an empty line would shift every later class. Remove it or give the class a name.',
    });
  }
  if (lines.length === 0) {
    throw new ConvlensError(`${configLabel}: ${key}: labels file "${path}" is empty`, {
      hint: 'Write one class name per line, in the model\'s output order, or remove the key to show class indices.',
    });
  }
  return lines;
}

type LabelResult = { label?: number; labelName?: string };

/** Where a label was written, for errors: a list row or a class folder. */
type LabelSite = { origin: string; row: string } | { origin: string; folder: string };

/**
 * Maps a label as written to a class: an exact class-name match first, else a non-negative
 * integer is a class index (in range when class names are known). A name with no class names
 * known is kept as `labelName` without an index (the caller warns once).
 */
function resolveLabel(raw: string | number, classNames: readonly string[] | undefined, site: LabelSite): LabelResult & { unmatched?: boolean } {
  const fix = 'folder' in site ? 'rename the class folder' : 'fix the label';
  if (typeof raw === 'string') {
    const name = raw.trim();
    const idx = classNames ? classNames.indexOf(name) : -1;
    if (idx >= 0) return { label: idx, labelName: name };
    if (/^\d+$/.test(name)) return indexLabel(Number(name), classNames, site, name);
    if (!classNames) return { labelName: name, unmatched: true };
    const what = 'folder' in site
      ? `${site.origin}: class folder "${name}" (${site.folder}) is not a known class`
      : `${site.origin}: ${site.row}: unknown label "${name}"`;
    throw new ConvlensError(`${what}; nearest: ${nearest(name, classNames).join(', ')}`, {
      hint: `Labels must match a class name from model.labels exactly (case matters) or be a class index 0-${classNames.length - 1}; ${fix} or the labels file.`,
    });
  }
  if (!Number.isInteger(raw) || raw < 0) {
    throw new ConvlensError(`${site.origin}: ${'row' in site ? site.row : site.folder}: label ${raw} is not a class index`, {
      hint: 'A numeric label is a class index: a whole number from 0. Use a class name (a string) otherwise.',
    });
  }
  return indexLabel(raw, classNames, site, undefined);
}

function indexLabel(i: number, classNames: readonly string[] | undefined, site: LabelSite, asWritten: string | undefined): LabelResult {
  if (!classNames) return { label: i, labelName: asWritten };
  if (i >= classNames.length) {
    const what = 'folder' in site ? `class folder "${asWritten}" (${site.folder})` : `${site.row}: label ${i}`;
    throw new ConvlensError(`${site.origin}: ${what} is out of range; there are ${classNames.length} classes (0-${classNames.length - 1})`, {
      hint: `An integer label is an index into model.labels (from 0); ${'folder' in site ? 'rename the class folder' : 'fix the label'} or the labels file.`,
    });
  }
  return { label: i, labelName: classNames[i] };
}

// ---------------------------------------------------------------------------------------------
// Listing

/**
 * The images of one data source, in a stable order, at most `limit` of them.
 *  - folder: `<folder>/<class>/**` images (class = top-level subfolder name; images directly in
 *    the folder have no label), ordered by class (index, then name) then natural file order.
 *    Under a limit, classes are taken round-robin so each gets an equal share (or all it has).
 *  - list: CSV `path,label[,box]` (header optional; a header row may name columns `path`/`file`/
 *    `image`, `label`/`class` and `box` or `x0,y0,x1,y1`) or JSON `[{path, label?, box?}]` /
 *    `["path"]`; paths relative to the list file; the first `limit` rows in list order. A box
 *    (the object's bounding box, for the pointing game) is in the original image's pixels.
 *  - files: paths relative to the config file (or `{path, label}`), the first `limit`; a path in a
 *    folder named like a class is labelled with that class.
 * Every path is checked to exist; decoding happens later (`loadImages`, `batches`).
 */
export async function listImages(source: DataSource, ctx: ListContext): Promise<ImageRef[]> {
  const configLabel = basename(ctx.config.file);
  const given = (['folder', 'list', 'files'] as const).filter((k) => source[k] !== undefined);
  if (given.length !== 1) {
    throw new ConvlensError(`${configLabel}: ${ctx.key}: give exactly one of folder, list or files (got ${given.length ? given.join(', ') : 'none'})`, {
      hint: `Set ${ctx.key}.folder (one subfolder per class), ${ctx.key}.list (CSV or JSON) or ${ctx.key}.files (a list of images).`,
    });
  }
  const limit = source.limit ?? Infinity;
  const rows = source.folder !== undefined
    ? await listFolder(source.folder, limit, ctx, configLabel)
    : source.list !== undefined
      ? await listFromFile(source.list, limit, ctx, configLabel)
      : await listFiles(source.files!, limit, ctx, configLabel);
  const ids = uniqueIds(rows.map((r) => r.idBase));
  const shown = publishedNames(rows.map((r) => r.source), ctx.config.dir);
  return rows.map((r, i) => {
    const ref: ImageRef = { id: ids[i], path: r.path, source: shown[i], origin: r.origin };
    if (r.label !== undefined) ref.label = r.label;
    if (r.labelName !== undefined) ref.labelName = r.labelName;
    if (r.box !== undefined) ref.box = r.box;
    return ref;
  });
}

interface Row extends LabelResult {
  box?: Box;
  path: string;
  source: string;
  idBase: string;
  origin: string;
}

async function listFolder(folder: string, limit: number, ctx: ListContext, configLabel: string): Promise<Row[]> {
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

interface ListEntry {
  path: string;
  label?: string | number;
  box?: Box;
  /** `line 3` (CSV) or `item 2` (JSON), 1-based. */
  where: string;
}

async function listFromFile(list: string, limit: number, ctx: ListContext, configLabel: string): Promise<Row[]> {
  const key = `${ctx.key}.list`;
  const origin = `${configLabel}: ${key}`;
  const file = configPath(ctx, list, key, configLabel);
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).replace(/^\uFEFF/, '');
  } catch (err) {
    const code = errCode(err);
    throw new ConvlensError(code === 'ENOENT'
      ? `${origin}: list file "${list}" not found (looked for ${file})`
      : `${origin}: cannot read list file "${list}" (${file}: ${code})`, {
      hint: `Point ${key} at a CSV (path,label per line) or JSON ([{"path": ..., "label": ...}]) file; relative paths start at the folder holding ${configLabel}.`,
    });
  }
  const isJson = extname(file).toLowerCase() === '.json' || /^\s*\[/.test(text);
  const entries = isJson ? parseJsonList(text, list, origin) : parseCsvList(text, list, origin);
  if (entries.length === 0) {
    throw new ConvlensError(`${origin}: list file "${list}" names no images (${file})`, {
      hint: isJson ? 'Write a JSON array: [{"path": "a.png", "label": "cat"}, ...] or ["a.png", ...].' : 'Write one image per line: path,label (a header row "path,label" is optional).',
    });
  }
  const listDir = dirname(file);
  const taken = entries.slice(0, Math.min(limit, entries.length));
  let unmatched = 0;
  const rows = taken.map((e) => {
    const where = `${basename(file)} ${e.where}`;
    const lab = e.label === undefined ? {} : resolveLabel(e.label, ctx.classNames, { origin, row: where });
    if ('unmatched' in lab && lab.unmatched) unmatched++;
    return {
      path: resolve(listDir, e.path),
      source: e.path,
      idBase: stem(e.path),
      origin,
      label: lab.label,
      labelName: lab.labelName,
      box: e.box,
    } satisfies Row;
  });
  if (unmatched > 0) {
    ctx.logger?.warn(`${origin}: ${unmatched} label(s) are names, but no class names are known (model.labels is not set); they are shown but not matched to model outputs. Set model.labels, or use class indices in ${basename(file)}.`);
  }
  await checkExist(rows.map((r, i) => ({ path: r.path, given: r.source, where: `${basename(file)} ${taken[i].where}` })), origin,
    `Paths in a list are relative to the list file's folder (${listDir}); fix the paths or add the images.`);
  return rows;
}

/** RFC 4180-style CSV: fields may be double-quoted ("" escapes a quote); blank lines skipped. */
export function parseCsv(text: string): { cells: string[]; line: number }[] {
  const rows: { cells: string[]; line: number }[] = [];
  let cells: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  let any = false;
  const endRow = () => {
    cells.push(cell);
    if (any || cells.length > 1 || cell.trim() !== '') rows.push({ cells: cells.map((c) => c.trim()), line: rowLine });
    cells = []; cell = ''; any = false;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (ch === '"') quoted = false;
      else { if (ch === '\n') line++; cell += ch; }
    } else if (ch === '"' && cell.trim() === '') { quoted = true; cell = ''; any = true; }
    else if (ch === ',') { cells.push(cell); cell = ''; any = true; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endRow();
      line++;
      rowLine = line;
    } else cell += ch;
  }
  if (cell !== '' || cells.length > 0 || any) endRow();
  return rows;
}

const PATH_HEADERS = ['path', 'file', 'filename', 'file_name', 'filepath', 'image', 'image_path', 'img'];
const LABEL_HEADERS = ['label', 'class', 'class_name', 'classname', 'target', 'category', 'y'];
const BOX_HEADERS = ['box', 'bbox', 'bounding_box'];
const CORNER_HEADERS = [['x0', 'y0', 'x1', 'y1'], ['xmin', 'ymin', 'xmax', 'ymax']];

const BOX_HINT = 'A box is x0,y0,x1,y1 in the original image\'s pixels (left, top, right, bottom; x0 < x1, y0 < y1): in CSV one quoted cell "x0,y0,x1,y1" in a box column (or four columns x0,y0,x1,y1), in JSON "box": [x0, y0, x1, y1].';

/**
 * A box as written: four numbers (a string split at commas, semicolons or spaces, or an array),
 * x0 < x1, y0 < y1, none negative. Empty / null / undefined: no box. Throws a message on error.
 */
export function parseBox(value: unknown): Box | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const parts = typeof value === 'string' ? value.trim().replace(/^[[(]|[\])]$/g, '').split(/[\s,;]+/).filter(Boolean) : value;
  if (!Array.isArray(parts)) throw new Error(`box must be four numbers x0,y0,x1,y1, got ${JSON.stringify(value)}`);
  const nums = parts.map((p) => (typeof p === 'number' ? p : typeof p === 'string' && p.trim() !== '' ? Number(p) : NaN));
  if (nums.length !== 4 || nums.some((v) => !Number.isFinite(v))) throw new Error(`box must be four numbers x0,y0,x1,y1, got ${JSON.stringify(value)}`);
  const [x0, y0, x1, y1] = nums;
  if (x0 < 0 || y0 < 0) throw new Error(`box ${JSON.stringify(value)} has a negative corner`);
  if (!(x1 > x0) || !(y1 > y0)) throw new Error(`box ${JSON.stringify(value)} is empty: it needs x0 < x1 and y0 < y1`);
  return [x0, y0, x1, y1];
}

/**
 * A box in the original image's pixels mapped to the model input [H, W], as the resize in
 * `preprocessImage` moves the pixels (sharp/libvips geometry: the scaled size is rounded, the
 * centred offset floored), then clipped to the input:
 *  - fill:    x' = x * W / w,  y' = y * H / h;
 *  - contain: s = min(W / w, H / h), scaled size (round(w s), round(h s)), placed at
 *             (floor((W - sw) / 2), floor((H - sh) / 2));
 *  - cover:   s = max(W / w, H / h), same scaled size, the centre crop starting at
 *             (floor((sw - W) / 2), floor((sh - H) / 2)).
 * Undefined when nothing of the box is left inside the input (cropped away by cover).
 */
export function boxToInput(box: Box, original: { width: number; height: number }, pre: Pick<Preprocessing, 'size' | 'resize'>): Box | undefined {
  const [H, W] = pre.size;
  const { width: w, height: h } = original;
  let sx: number, sy: number, ox = 0, oy = 0;
  if (pre.resize === 'fill') {
    sx = W / w;
    sy = H / h;
  } else {
    const s = pre.resize === 'contain' ? Math.min(W / w, H / h) : Math.max(W / w, H / h);
    const sw = Math.max(1, Math.round(w * s));
    const sh = Math.max(1, Math.round(h * s));
    sx = sw / w;
    sy = sh / h;
    if (pre.resize === 'contain') {
      ox = Math.floor((W - sw) / 2);
      oy = Math.floor((H - sh) / 2);
    } else {
      ox = -Math.floor((sw - W) / 2);
      oy = -Math.floor((sh - H) / 2);
    }
  }
  const clip = (v: number, hi: number) => Math.min(hi, Math.max(0, v));
  const out: Box = [clip(box[0] * sx + ox, W), clip(box[1] * sy + oy, H), clip(box[2] * sx + ox, W), clip(box[3] * sy + oy, H)];
  return out[2] > out[0] && out[3] > out[1] ? out : undefined;
}

/**
 * CSV list: `path[,label[,box]]` per row. The first row is a header when one of its cells is a
 * path column name (`path`, `file`, `image`, ...); then columns are found by name (`label`,
 * `class`, ...; `box`/`bbox` holding "x0,y0,x1,y1", or four columns `x0,y0,x1,y1` /
 * `xmin,ymin,xmax,ymax`), otherwise column 1 is the path, column 2 the label and column 3 the box
 * (a quoted "x0,y0,x1,y1") or columns 3-6 its corners. Empty label or box cells mean none.
 */
function parseCsvList(text: string, given: string, origin: string): ListEntry[] {
  const rows = parseCsv(text);
  let pathCol = 0;
  let labelCol: number | undefined = 1;
  let boxCols: number[] | 'positional' = 'positional';
  if (rows.length > 0) {
    const head = rows[0].cells.map((c) => c.toLowerCase());
    const p = head.findIndex((c) => PATH_HEADERS.includes(c));
    if (p >= 0) {
      pathCol = p;
      const l = head.findIndex((c) => LABEL_HEADERS.includes(c));
      labelCol = l >= 0 ? l : undefined;
      const b = head.findIndex((c) => BOX_HEADERS.includes(c));
      const corners = CORNER_HEADERS.map((names) => names.map((n) => head.indexOf(n))).find((idx) => idx.every((i) => i >= 0));
      boxCols = b >= 0 ? [b] : corners ?? [];
      rows.shift();
    }
  }
  return rows.map((r) => {
    const path = r.cells[pathCol] ?? '';
    if (path === '') {
      throw new ConvlensError(`${origin}: ${basename(given)} line ${r.line}: no image path`, {
        hint: 'Each line of a CSV list is path,label (label optional); remove the empty entry or fill in the path.',
      });
    }
    const label = labelCol === undefined ? '' : (r.cells[labelCol] ?? '');
    const cols = boxCols === 'positional' ? (r.cells.length >= 6 ? [2, 3, 4, 5] : [2]) : boxCols;
    const cells = cols.map((c) => r.cells[c] ?? '');
    let box: Box | undefined;
    try {
      box = cells.every((c) => c === '') ? undefined : parseBox(cells.length === 1 ? cells[0] : cells);
    } catch (err) {
      throw new ConvlensError(`${origin}: ${basename(given)} line ${r.line}: ${(err as Error).message}`, { hint: BOX_HINT });
    }
    return { path, label: label === '' ? undefined : label, where: `line ${r.line}`, ...(box ? { box } : {}) };
  });
}

function parseJsonList(text: string, given: string, origin: string): ListEntry[] {
  const shapeHint = 'Write a JSON array of objects, [{"path": "a.png", "label": "cat"}, ...] (label optional: a class name or index), or of paths, ["a.png", ...].';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConvlensError(`${origin}: ${basename(given)} is not valid JSON (${(err as Error).message})`, { hint: shapeHint });
  }
  if (!Array.isArray(value)) {
    throw new ConvlensError(`${origin}: ${basename(given)} holds ${value === null ? 'null' : typeof value}, not an array`, { hint: shapeHint });
  }
  return value.map((item, i) => {
    const where = `item ${i + 1}`;
    const bad = (what: string) => new ConvlensError(`${origin}: ${basename(given)} ${where}: ${what}`, { hint: shapeHint });
    if (typeof item === 'string') {
      if (item.trim() === '') throw bad('empty path');
      return { path: item.trim(), where };
    }
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw bad(`expected an object or a string, got ${item === null ? 'null' : Array.isArray(item) ? 'an array' : typeof item}`);
    const o = item as Record<string, unknown>;
    if (typeof o.path !== 'string' || o.path.trim() === '') throw bad('"path" must be a non-empty string');
    const label = o.label;
    if (label !== undefined && label !== null && typeof label !== 'string' && typeof label !== 'number') throw bad('"label" must be a class name (string) or a class index (number)');
    let box: Box | undefined;
    try {
      box = parseBox(o.box);
    } catch (err) {
      throw new ConvlensError(`${origin}: ${basename(given)} ${where}: ${(err as Error).message}`, { hint: BOX_HINT });
    }
    return { path: o.path.trim(), label: label === null || label === '' ? undefined : label as string | number | undefined, where, ...(box ? { box } : {}) };
  });
}

/**
 * `files` entries: a path, or `{path, label}`. A path's label is its `label`, else the name of the
 * folder holding it when that is a class name from model.labels (exactly; a folder named like no
 * class gives no label, since files may sit in any folder).
 */
async function listFiles(files: FileEntry[], limit: number, ctx: ListContext, configLabel: string): Promise<Row[]> {
  const key = `${ctx.key}.files`;
  const origin = `${configLabel}: ${key}`;
  const rows = files.slice(0, Math.min(limit, files.length)).map((entry, i): Row => {
    const f = typeof entry === 'string' ? entry : entry.path;
    const row: Row = { path: configPath(ctx, f, `${key}[${i}]`, configLabel), source: f, idBase: stem(f), origin };
    const folder = basename(dirname(f.replace(/\\/g, '/')));
    const given = typeof entry === 'string' ? undefined : entry.label;
    const label = given !== undefined
      ? resolveLabel(given, ctx.classNames, { origin, row: `[${i}]` })
      : ctx.classNames?.includes(folder) ? resolveLabel(folder, ctx.classNames, { origin, folder }) : {};
    if ('unmatched' in label) delete label.unmatched;
    return { ...row, ...label };
  });
  await checkExist(rows.map((r, i) => ({ path: r.path, given: r.source, where: `[${i}]`, keyed: true })), `${configLabel}: ${key}`,
    `Paths in ${key} are relative to the folder holding ${configLabel} (${ctx.config.dir}); fix the paths or add the images.`);
  return rows;
}

/**
 * A config path against the config file's folder, as config.ts's resolveFromConfig does (not
 * imported: config.ts loads the backend and tfjs, which this module keeps out). URLs are refused.
 */
function configPath(ctx: ListContext, p: string, key: string, configLabel: string): string {
  if (/^https?:\/\//i.test(p)) {
    throw new ConvlensError(`${configLabel}: ${key}: "${p}" is a URL; data is read from local files only`, {
      hint: 'Download the images and point the key at the local folder, list or files.',
    });
  }
  return resolve(ctx.config.dir, p);
}

/** Every path must be an existing file; reports the first few missing ones at once. */
async function checkExist(items: { path: string; given: string; where: string; keyed?: boolean }[], origin: string, hint: string): Promise<void> {
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

// ---------------------------------------------------------------------------------------------
// Names that get published

/**
 * Image names as the report shows them, with no absolute path of this machine in them: a relative
 * name stays as written; an absolute one becomes relative to the config folder when it lies inside
 * it, else relative to the deepest folder all such images share (so `/home/me/data/cat/1.jpg`
 * and `/home/me/data/dog/2.jpg` show as `cat/1.jpg` and `dog/2.jpg`; a lone file as its name).
 * Separators become `/`.
 */
export function publishedNames(names: readonly string[], configDir: string): string[] {
  const outside = names.filter((n) => isAbsolute(n) && isOutside(configDir, n));
  let root = outside.length ? dirname(resolve(outside[0])) : '';
  for (const n of outside) while (isOutside(root, resolve(n))) root = dirname(root);
  return names.map((n) => {
    if (!isAbsolute(n)) return n.replace(/\\/g, '/');
    const from = isOutside(configDir, n) ? root : configDir;
    return relative(from, resolve(n)).split(sep).join('/');
  });
}

/**
 * The model's location as the report shows it: a URL or relative path as written; an absolute
 * path relative to the config folder when inside it, else its last folder (and file) name, e.g.
 * `/home/me/models/resnet/model.onnx` -> `resnet/model.onnx`.
 */
export function publishedModelSource(source: string, configDir: string): string {
  if (/^https?:\/\//i.test(source) || !isAbsolute(source)) return source;
  if (!isOutside(configDir, source)) return relative(configDir, resolve(source)).split(sep).join('/');
  const clean = resolve(source);
  const name = basename(clean);
  return /\.(json|onnx)$/i.test(name) ? `${basename(dirname(clean))}/${name}` : name;
}

function isOutside(dir: string, path: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  return rel === '' ? false : rel.startsWith('..') || isAbsolute(rel);
}

// ---------------------------------------------------------------------------------------------
// Ids and ordering

/** `Cat_01.PNG` -> `cat-01`: lowercase, runs of other characters become `-`, at most 60 chars. */
export function slugify(name: string): string {
  const s = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60).replace(/-+$/, '');
  return s || 'image';
}

/** Slugs made unique in order: a repeat of `cat` becomes `cat-2`, `cat-3`, ... */
export function uniqueIds(bases: readonly string[]): string[] {
  const used = new Set<string>();
  return bases.map((b) => {
    const base = slugify(b);
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}-${n}`;
    used.add(id);
    return id;
  });
}

const stem = (p: string) => basename(p.replace(/\\/g, '/'), extname(p));

/** Natural order: digit runs compare as numbers (`img2` < `img10`); ties by code points. */
export function naturalCompare(a: string, b: string): number {
  const ta = a.match(/\d+|\D+/g) ?? [];
  const tb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    const x = ta[i];
    const y = tb[i];
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const nx = x.replace(/^0+(?=\d)/, '');
      const ny = y.replace(/^0+(?=\d)/, '');
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return nx < ny ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  if (ta.length !== tb.length) return ta.length - tb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Preprocessing

/**
 * Fills `input` from the model where the config leaves it open: size = the model's [H, W],
 * channels = its C. Checks mean/std lengths (1 or channels).
 */
export function resolvePreprocessing(
  input: Config['input'],
  model: { height?: number | null; width?: number | null; channels?: number | null } = {},
  configLabel = 'viz.yaml',
): Preprocessing {
  const size = input.size ?? (model.height && model.width ? [model.height, model.width] as [number, number] : undefined);
  if (!size) {
    throw new ConvlensError(`${configLabel}: input.size: the model does not fix its input size (${model.height ?? '?'}x${model.width ?? '?'})`, {
      hint: 'Set input.size to [height, width], the size the model was trained on.',
    });
  }
  const channels = input.channels ?? model.channels ?? undefined;
  if (channels !== 1 && channels !== 3) {
    throw new ConvlensError(`${configLabel}: input.channels: ${channels === undefined || channels === null ? 'the model does not fix its channel count' : `the model takes ${channels} channels`}; convlens feeds 1 (grayscale) or 3 (colour)`, {
      hint: 'Set input.channels to 1 or 3 to match how the model was trained.',
    });
  }
  if (model.channels && input.channels && model.channels !== input.channels) {
    throw new ConvlensError(`${configLabel}: input.channels: ${input.channels}, but the model takes ${model.channels} channels`, {
      hint: `Set input.channels to ${model.channels} or remove it to use the model's.`,
    });
  }
  for (const k of ['mean', 'std'] as const) {
    const v = input[k];
    if (v.length !== 1 && v.length !== channels) {
      throw new ConvlensError(`${configLabel}: input.${k}: has ${v.length} values for ${channels} channel(s)`, {
        hint: `Give one value (used for every channel) or ${channels}, in the model's channel order (${channels === 3 ? input.channelOrder : 'gray'}).`,
      });
    }
  }
  return { size, channels, channelOrder: input.channelOrder, scale: input.scale, mean: input.mean, std: input.std, resize: input.resize, exifOrientation: input.exifOrientation };
}

/**
 * Decodes and preprocesses one image:
 *  1. decode (any format sharp reads; a file libvips warns about, such as a JPEG cut short or
 *     corrupt mid-file, is an error rather than half an image), apply the EXIF orientation only
 *     with input.exifOrientation: apply (by default not, like tf.io.decode_image and PIL),
 *     convert to sRGB 8-bit, flatten alpha onto black;
 *  2. resize to [h, w] (lanczos3): fill stretches; cover scales to cover and crops the centre;
 *     contain scales to fit and pads with black, centred;
 *  3. channels 1: gray = round(0.299 R + 0.587 G + 0.114 B) (ITU-R 601 luma, computed as PIL
 *     does: (19595 R + 38470 G + 7471 B + 32768) >> 16);
 *  4. input[y, x, c] = (p[c'] * scale - mean[c]) / std[c], where c' = c for rgb and 2 - c for
 *     bgr, mean/std broadcast when of length 1; display[y, x] = (R, G, B), or (g, g, g).
 */
export async function preprocessImage(image: string | Buffer, pre: Preprocessing): Promise<PreprocessedImage> {
  const [h, w] = pre.size;
  let img = sharp(image, { failOn: 'warning' });
  if (pre.exifOrientation === 'apply') img = img.rotate();
  const { data, info } = await img
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .resize(w, h, { fit: pre.resize, position: 'centre', background: { r: 0, g: 0, b: 0, alpha: 1 }, kernel: 'lanczos3' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.width !== w || info.height !== h || info.channels !== 3 || data.length !== w * h * 3) {
    throw new Error(`decoded ${info.width}x${info.height}x${info.channels}, expected ${w}x${h}x3`);
  }
  const n = w * h;
  const c = pre.channels;
  const input = new Float32Array(n * c);
  const display = new Uint8Array(n * 3);
  const mean = (k: number) => pre.mean.length === 1 ? pre.mean[0] : pre.mean[k];
  const std = (k: number) => pre.std.length === 1 ? pre.std[0] : pre.std[k];
  if (c === 1) {
    const m = mean(0);
    const s = std(0);
    for (let i = 0; i < n; i++) {
      const g = (data[3 * i] * 19595 + data[3 * i + 1] * 38470 + data[3 * i + 2] * 7471 + 32768) >> 16;
      display[3 * i] = display[3 * i + 1] = display[3 * i + 2] = g;
      input[i] = (g * pre.scale - m) / s;
    }
  } else {
    display.set(data);
    const src = pre.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
    const ms = [mean(0), mean(1), mean(2)];
    const ss = [std(0), std(1), std(2)];
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < 3; k++) input[3 * i + k] = (data[3 * i + src[k]] * pre.scale - ms[k]) / ss[k];
    }
  }
  return { input, display };
}

async function preprocessRef(ref: ImageRef, pre: Preprocessing): Promise<PreprocessedImage> {
  try {
    return await preprocessImage(ref.path, pre);
  } catch (err) {
    const reason = (err as Error).message?.split('\n')[0] ?? String(err);
    throw new ConvlensError(`${ref.origin ? `${ref.origin}: ` : ''}cannot read image "${ref.source}" (${ref.path}): ${reason}`, {
      hint: BAD_IMAGE_HINT,
      cause: err,
    });
  }
}

export const BAD_IMAGE_HINT = 'Replace or remove the file; convlens reads PNG, JPEG and WebP images (and other formats sharp decodes when listed by name).';

/** An image that could not be decoded, with the first line of the decoder's message. */
export interface BadImage {
  ref: ImageRef;
  reason: string;
}

/**
 * Decodes and preprocesses every ref exactly as `loadImages` will (so whatever would fail a
 * later pass fails here), keeping nothing: the refs that fail, in listing order.
 */
export async function findBadImages(refs: readonly ImageRef[], pre: Preprocessing, opts: LoadOptions & { onDone?: () => void } = {}): Promise<BadImage[]> {
  const found = await mapLimit(refs, opts.concurrency ?? DEFAULT_CONCURRENCY, async (ref) => {
    try {
      await preprocessImage(ref.path, pre);
      return undefined;
    } catch (err) {
      return { ref, reason: (err as Error).message?.split('\n')[0] ?? String(err) };
    } finally {
      opts.onDone?.();
    }
  });
  return found.filter((b): b is BadImage => b !== undefined);
}

/** All refs as one batch (n = refs.length). For large sets use `batches`. */
export async function loadImages(refs: readonly ImageRef[], pre: Preprocessing, opts: LoadOptions = {}): Promise<ImageBatch> {
  const images = await mapLimit(refs, opts.concurrency ?? DEFAULT_CONCURRENCY, (r) => preprocessRef(r, pre));
  return toBatch(refs, images, pre);
}

/**
 * The refs in order, `batchSize` at a time (the last batch may be smaller). Decoding of the next
 * batch overlaps the caller's work on the current one, so at most two batches are in memory.
 */
export async function* batches(refs: readonly ImageRef[], pre: Preprocessing, batchSize: number, opts: LoadOptions = {}): AsyncGenerator<ImageBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batches: batchSize must be a positive integer, got ${batchSize}`);
  const load = (start: number) => {
    const p = loadImages(refs.slice(start, start + batchSize), pre, opts);
    p.catch(() => {}); // surfaced when awaited; avoids an unhandled rejection if the caller stops early
    return p;
  };
  let next = refs.length > 0 ? load(0) : undefined;
  for (let start = 0; next; start += batchSize) {
    const current = await next;
    next = start + batchSize < refs.length ? load(start + batchSize) : undefined;
    yield current;
  }
}

function toBatch(refs: readonly ImageRef[], images: PreprocessedImage[], pre: Preprocessing): ImageBatch {
  const [h, w] = pre.size;
  const per = h * w * pre.channels;
  const input = new Float32Array(images.length * per);
  images.forEach((im, i) => input.set(im.input, i * per));
  return { refs: [...refs], input, shape: [images.length, h, w, pre.channels], display: images.map((im) => im.display) };
}

/** `fn` over `items` with at most `limit` running at once; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let nextIndex = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && nextIndex < items.length) {
      const i = nextIndex++;
      try {
        out[i] = await fn(items[i], i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? String(err);
}

