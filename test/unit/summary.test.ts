import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../pipeline/manifest.ts';
import { escapeMarkdown } from '../../pipeline/escape.ts';
import { renderSummaries } from '../../pipeline/summary.ts';
import { HOSTILE_CLASS, makeFixtureRelease } from '../fixtures/make-manifest.ts';

describe('summary.md and summary.html', () => {
  it('escapes Markdown syntax and HTML in model-supplied strings', () => {
    expect(escapeMarkdown('a_b*[c](d)|e')).toBe('a\\_b\\*\\[c\\]\\(d\\)\\|e');
    expect(escapeMarkdown(HOSTILE_CLASS)).toBe('&lt;img src=x onerror=alert\\(1\\)&gt;');
  });

  it('renders relative links in Markdown and inlines every image in HTML', async () => {
    const out = await mkdtemp(join(tmpdir(), 'convlens-summary-'));
    await makeFixtureRelease(out, 'r1');
    const releaseDir = join(out, 'releases', 'r1');
    const manifest = parseManifest(JSON.parse(await readFile(join(releaseDir, 'manifest.json'), 'utf8')));
    const { markdown, html } = await renderSummaries(manifest, releaseDir, { accuracy: 0.5, labelled: 4 });

    const links = [...markdown.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => decodeURIComponent(m[1]));
    const pictures = manifest.artifacts.filter((a) => a.kind === 'image').map((a) => a.path);
    expect(new Set(links)).toEqual(new Set([...pictures, ...manifest.samples.map((s) => s.path)]));
    expect(markdown).toContain('50.00% top-1 on 4 labelled dataset images');
    expect(markdown).not.toContain('<img src=x');

    const srcs = [...html.matchAll(/<img [^>]*src="([^"]*)"/g)].map((m) => m[1]);
    expect(srcs.length).toBe(links.length);
    for (const s of srcs) expect(s).toMatch(/^data:image\/(png|webp);base64,[A-Za-z0-9+/]+=*$/);
    expect(html).not.toMatch(/(src|href)="(?!data:)/);
    expect(html).not.toContain('<img src=x onerror');
    expect(html).toMatch(/&lt;img src(=|&#x3D;)x onerror(=|&#x3D;)alert\(1\)&gt;/);
  });
});
