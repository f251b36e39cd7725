import { basename, extname } from 'node:path';

/**
 * Names made safe for ids and file names, and the order images are listed in. One slug function
 * with a rule per use: image ids fold accents and keep letters and digits only, cut at 60
 * characters; release file names keep `.`, `_` and `-` so layer names like `block1/conv:0` stay
 * readable.
 */

/**
 * How `slug` folds a name: lowercase; NFKD with combining marks dropped when `foldAccents`
 * (`é` -> `e`, else `é` -> `-`); every run of characters other than a-z, 0-9 and `keep` -> `-`;
 * leading and trailing `-` dropped; cut at `maxLength` (and trailing `-` dropped again);
 * `fallback` when nothing is left.
 */
export interface SlugRule {
  foldAccents: boolean;
  keep: string;
  maxLength?: number;
  fallback: string;
}

/** Image ids (`ImageRef.id`): `Cat_01.PNG` -> `cat-01-png`, matching `^[a-z0-9][a-z0-9-]*$`. */
export const IMAGE_ID_SLUG: SlugRule = { foldAccents: true, keep: '', maxLength: 60, fallback: 'image' };

/** Release file names: `Block1/Conv:0` -> `block1-conv-0`, `conv2d_1.bn` stays. */
export const FILE_NAME_SLUG: SlugRule = { foldAccents: false, keep: '._-', fallback: 'x' };

export function slug(name: string, rule: SlugRule = FILE_NAME_SLUG): string {
  const folded = rule.foldAccents ? name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '') : name;
  const other = new RegExp(`[^a-z0-9${rule.keep.replace(/[\\\]^-]/g, '\\$&')}]+`, 'g');
  let s = folded.toLowerCase().replace(other, '-').replace(/^-+|-+$/g, '');
  if (rule.maxLength !== undefined) s = s.slice(0, rule.maxLength).replace(/-+$/, '');
  return s || rule.fallback;
}

/** `Cat_01.PNG` -> `cat-01-png`: `slug` with `IMAGE_ID_SLUG`. */
export function slugify(name: string): string {
  return slug(name, IMAGE_ID_SLUG);
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

/** A path's file name without its extension, `\` read as `/`. */
export const stem = (p: string) => basename(p.replace(/\\/g, '/'), extname(p));

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
