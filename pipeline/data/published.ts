import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path';

/** Names that get published: no absolute path of this machine in a release. */

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
