import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, resolve } from 'node:path';
import { ConvlensError } from '../errors.ts';
import { BOX_HINT, parseBox, type Box } from './boxes.ts';
import { parseCsv } from './csv.ts';
import { stem } from './ids.ts';
import { resolveLabel } from './labels.ts';
import type { ListContext, Row } from './listing.ts';
import { checkExist, configPath, errCode } from './paths.ts';

/**
 * A list file data source: CSV rows `path[,label[,box]]` or a JSON array of `{path, label?, box?}`
 * or paths, relative to the list file.
 */

interface ListEntry {
  path: string;
  label?: string | number;
  box?: Box;
  /** `line 3` (CSV) or `item 2` (JSON), 1-based. */
  where: string;
}

export async function listFromFile(list: string, limit: number, ctx: ListContext, configLabel: string): Promise<Row[]> {
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


const PATH_HEADERS = ['path', 'file', 'filename', 'file_name', 'filepath', 'image', 'image_path', 'img'];
const LABEL_HEADERS = ['label', 'class', 'class_name', 'classname', 'target', 'category', 'y'];
const BOX_HEADERS = ['box', 'bbox', 'bounding_box'];
const CORNER_HEADERS = [['x0', 'y0', 'x1', 'y1'], ['xmin', 'ymin', 'xmax', 'ymax']];

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
