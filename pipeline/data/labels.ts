import { readFile } from 'node:fs/promises';
import { ConvlensError, nearest } from '../errors.ts';
import { errCode } from './paths.ts';

/** Class names (`model.labels`) and the labels written in folders, lists and `files` entries. */

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

export type LabelResult = { label?: number; labelName?: string };

/** Where a label was written, for errors: a list row or a class folder. */
export type LabelSite = { origin: string; row: string } | { origin: string; folder: string };

/**
 * Maps a label as written to a class: an exact class-name match first, else a non-negative
 * integer is a class index (in range when class names are known). A name with no class names
 * known is kept as `labelName` without an index (the caller warns once).
 */
export function resolveLabel(raw: string | number, classNames: readonly string[] | undefined, site: LabelSite): LabelResult & { unmatched?: boolean } {
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
