/** Text escaping for the report's Markdown, HTML and SVG (summary.md/html, metrics table, charts). */

/** Markdown-safe text: backslash-escapes Markdown syntax and turns < > & into entities. */
export function escapeMarkdown(s: unknown): string {
  return String(s ?? '')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/([\\`*_{}[\]()#+!|~])/g, '\\$1')
    .replace(/\r?\n/g, ' ');
}

/** HTML/XML-safe text, also inside quoted attributes. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}
