import { basename, dirname } from 'node:path';
import type { LoadedConfig } from '../config.ts';
import { ConvlensError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Box } from './boxes.ts';
import { listFolder } from './folder.ts';
import { stem, uniqueIds } from './ids.ts';
import { resolveLabel, type LabelResult } from './labels.ts';
import { listFromFile } from './list-file.ts';
import { checkExist, configPath } from './paths.ts';
import { publishedNames } from './published.ts';

/**
 * Which images a data source (`data.samples`, `data.dataset`) names: a class folder, a CSV or
 * JSON list file, or `files` entries, as `ImageRef`s in a stable order.
 */

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

export interface Row extends LabelResult {
  box?: Box;
  path: string;
  source: string;
  idBase: string;
  origin: string;
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
