/**
 * Every link and image `src` in the site is relative to the page that holds it, so the same
 * build works opened from disk (file://), under any base path (GitHub Pages project sites) and
 * with `astro preview`. Nothing in the HTML starts with `/`.
 *
 * Conventions:
 * - A "site path" names a place in the built site, without a leading slash. Pages are folders
 *   and end in `/` (the overview is `''`); files do not (`artifacts/grad-cam/cat.png`).
 * - Links to a page point at its `index.html` explicitly: file:// serves no index files.
 * - Site paths are plain text; `href` percent-encodes each segment, so release file names with
 *   spaces or `#` still resolve.
 * - Release-relative paths from the manifest go through `releaseFileSegments` both when the
 *   files are copied and when they are linked, so the two always agree.
 */

/** Where each kind of page lives. Sample ids are `[a-z0-9-]` by schema; method slugs by `methodSlugs`. */
export const routes = {
  overview: '',
  filters: 'filters/',
  sample: (id: string) => `samples/${id}/`,
  method: (slug: string) => `methods/${slug}/`,
  layers: 'layers/',
  /** Layer slugs come from `layerSlugs`. */
  layer: (slug: string) => `layers/${slug}/`,
  classes: 'classes/',
  /** Class pages are named by class index. */
  class: (index: number) => `classes/${index}/`,
  embedding: 'embedding/',
  /** Trust metrics (src/pages/metrics/), built when the release has the metrics data artifact. */
  metrics: 'metrics/',
  releases: 'releases/',
  /** The page comparing this release with another one; slugs come from `releaseSlugs`. */
  compare: (slug: string) => `releases/${slug}/`,
  /** A file the manifest lists, copied to `artifacts/<same relative path>`. */
  artifact: (releasePath: string) => `artifacts/${releaseFileSegments(releasePath).join('/')}`,
  /** A file of another release shown on its compare page, copied beside that page. */
  otherArtifact: (slug: string, releasePath: string) => `releases/${slug}/artifacts/${releaseFileSegments(releasePath).join('/')}`,
} as const;

/** The segments of a manifest path (already schema-checked: relative, no `..`, no `\`), without empty or `.` parts. */
export function releaseFileSegments(releasePath: string): string[] {
  const segments = releasePath.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.length === 0 || segments.includes('..')) throw new Error(`not a file inside the release: ${JSON.stringify(releasePath)}`);
  return segments;
}

/** What a page knows about itself: `Astro.routePattern` and `Astro.params`. */
export interface PageRoute {
  routePattern: string;
  params: Record<string, string | undefined>;
}

/**
 * The folder (site path) of the page being rendered, from its route pattern and params:
 * `/samples/[id]` with id `cat` gives `samples/cat/`, `/` gives `''`. Taken from the route
 * rather than the URL, so it never depends on the base path (or on how a base reaches
 * `import.meta.env`, which differs between the CLI and a test runner).
 */
export function pageDirOf(page: PageRoute): string {
  const segments = page.routePattern
    .split('/')
    .filter(Boolean)
    .flatMap((seg) => seg.replace(/\[(?:\.\.\.)?([^\]]+)\]/g, (_, name: string) => page.params[name] ?? '').split('/'))
    .filter(Boolean);
  return segments.length === 0 ? '' : `${segments.join('/')}/`;
}

/**
 * The relative URL from the page in folder `from` to the site path `to` (a page folder or a
 * file), with an optional fragment. The one helper every link and `src` goes through.
 */
export function href(from: string, to: string, fragment?: string): string {
  const depth = from.split('/').filter(Boolean).length;
  const target = to === '' || to.endsWith('/') ? `${to}index.html` : to;
  const encoded = target.split('/').map(encodeURIComponent).join('/');
  const hash = fragment ? `#${encodeURIComponent(fragment)}` : '';
  return `${'../'.repeat(depth)}${encoded}${hash}`;
}

/** A linker bound to the current page: `const to = linkFrom(Astro)` then `to(routes.filters)`. */
export function linkFrom(page: PageRoute): (to: string, fragment?: string) => string {
  const here = pageDirOf(page);
  return (to, fragment) => href(here, to, fragment);
}

/**
 * URL-safe, unique slugs for method ids (ids are free text in the schema). The same id list
 * always gives the same slugs; clashes get `-2`, `-3`, ... in list order.
 */
export function methodSlugs(ids: readonly string[]): Map<string, string> {
  return uniqueSlugs(ids, 'method');
}

/** Layer names (free text, e.g. `block1/conv:0`) to unique URL-safe slugs, as `methodSlugs`. */
export function layerSlugs(names: readonly string[]): Map<string, string> {
  return uniqueSlugs(names, 'layer');
}

/** Release folder names to unique URL-safe slugs, as `methodSlugs`. */
export function releaseSlugs(names: readonly string[]): Map<string, string> {
  return uniqueSlugs(names, 'release');
}

/** `[a-z0-9-]` slugs, unique in list order (clashes get `-2`, `-3`, ...). */
export function uniqueSlugs(ids: readonly string[], fallback: string): Map<string, string> {
  const out = new Map<string, string>();
  const used = new Set<string>();
  for (const id of ids) {
    if (out.has(id)) continue;
    const base = id.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || fallback;
    let slug = base;
    for (let n = 2; used.has(slug); n++) slug = `${base}-${n}`;
    used.add(slug);
    out.set(id, slug);
  }
  return out;
}

/** An id for an in-page anchor built from free text; the index keeps it unique. */
export function anchorId(prefix: string, text: string, index: number): string {
  const slug = text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
  return slug ? `${prefix}-${index + 1}-${slug}` : `${prefix}-${index + 1}`;
}

/**
 * The link target for a URL from the manifest (a method's paper), or undefined when it should be
 * shown as text: only absolute http(s) URLs become links (never `javascript:` and friends), and
 * only in WHATWG-serialized form, which percent-encodes quotes and angle brackets. That matters
 * because Astro writes http(s) URLs containing `&` into attributes without escaping them.
 */
export function webUrl(value: string): string | undefined {
  if (!/^https?:\/\//i.test(value.trim())) return undefined;
  try {
    const url = new URL(value.trim());
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}
