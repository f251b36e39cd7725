import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AstroIntegration } from 'astro';

/**
 * Astro escapes `&` and `"` in attribute values but leaves `<` and `>` as they are. That is valid
 * and safe HTML, yet a model-supplied class name such as `<img src=x onerror=...>` then appears
 * verbatim inside `alt="..."`, which trips scanners and anyone who greps the report, and is one
 * careless copy away from markup. This pass rewrites `<`/`>` inside quoted attribute values of the
 * built pages as `&lt;`/`&gt;`; browsers decode both forms to the same text.
 *
 * Only tags are touched: text (already escaped by Astro), comments, the doctype and the raw
 * contents of <style> and <script> are copied unchanged.
 */
export function escapeAttributeBrackets(html: string): string {
  const n = html.length;
  let out = '';
  let i = 0;
  while (i < n) {
    const lt = html.indexOf('<', i);
    if (lt < 0) {
      out += html.slice(i);
      break;
    }
    out += html.slice(i, lt);
    if (html.startsWith('<!--', lt)) {
      const end = html.indexOf('-->', lt + 4);
      const stop = end < 0 ? n : end + 3;
      out += html.slice(lt, stop);
      i = stop;
      continue;
    }
    const name = /^<([a-zA-Z][^\s/>]*)/.exec(html.slice(lt, lt + 100))?.[1];
    if (!name) {
      out += '<';
      i = lt + 1;
      continue;
    }
    let j = lt + 1 + name.length;
    out += html.slice(lt, j);
    while (j < n && html[j] !== '>') {
      const c = html[j];
      if (c === '"' || c === "'") {
        const close = html.indexOf(c, j + 1);
        const end = close < 0 ? n : close;
        out += c + html.slice(j + 1, end).replace(/</g, '&lt;').replace(/>/g, '&gt;') + (close < 0 ? '' : c);
        j = end + 1;
      } else {
        out += c;
        j++;
      }
    }
    if (j < n) out += '>';
    i = j + 1;
    const tag = name.toLowerCase();
    if (tag === 'style' || tag === 'script') {
      const close = html.toLowerCase().indexOf(`</${tag}`, i);
      const stop = close < 0 ? n : close;
      out += html.slice(i, stop);
      i = stop;
    }
  }
  return out;
}

/** Release files copied into the site (`artifacts/...`, `releases/<slug>/artifacts/...`), as opposed to pages. */
export function isCopiedFile(siteRelative: string): boolean {
  const parts = siteRelative.split(sep).join('/').split('/');
  return parts[0] === 'artifacts' || (parts[0] === 'releases' && parts[2] === 'artifacts');
}

/** Applies `escapeAttributeBrackets` to every built page (not to copied release files). */
export default function convlensEscapeAttributeBrackets(): AstroIntegration {
  return {
    name: 'convlens-escape-attribute-brackets',
    hooks: {
      'astro:build:done': async ({ dir }) => {
        const root = fileURLToPath(dir);
        for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
          if (!entry.isFile() || !entry.name.endsWith('.html')) continue;
          const file = join(entry.parentPath, entry.name);
          if (isCopiedFile(relative(root, file))) continue;
          const html = await readFile(file, 'utf8');
          const fixed = escapeAttributeBrackets(html);
          if (fixed !== html) await writeFile(file, fixed);
        }
      },
    },
  };
}
