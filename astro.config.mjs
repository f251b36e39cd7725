// @ts-check
import { defineConfig } from 'astro/config';
import convlensArtifacts from './src/integrations/artifacts.ts';
import convlensEscapeAttributeBrackets from './src/integrations/escape-attribute-brackets.ts';

/**
 * The report site. Everything comes from the environment so `buildSite` (pipeline/site.ts) and a
 * plain `npx astro build` / `astro preview` agree:
 * - CONVLENS_OUTPUT_DIR (default `output`) and CONVLENS_RELEASE (required): which manifest to show
 * - CONVLENS_SITE_DIR (default `output/site`): where the site is written
 * - CONVLENS_BASE (default `/`): the URL path the site is served under; pages link relatively,
 *   so the same files also work from file:// and any other base
 * Telemetry is switched off here (it is read after the config loads); the build makes no network
 * requests (no fonts, no remote images, no prefetch). Client JS is only progressive enhancement,
 * as classic scripts copied from public/js (they run from file:// too; module scripts do not).
 * Besides the release, the site indexes every release in CONVLENS_OUTPUT_DIR/releases and
 * compares the current one with each (src/lib/releases.ts).
 */
process.env.ASTRO_TELEMETRY_DISABLED ??= '1';

export default defineConfig({
  output: 'static',
  srcDir: './src',
  outDir: process.env.CONVLENS_SITE_DIR || 'output/site',
  base: process.env.CONVLENS_BASE || '/',
  trailingSlash: 'ignore',
  build: {
    format: 'directory',
    inlineStylesheets: 'always',
  },
  devToolbar: { enabled: false },
  prefetch: false,
  // Pages are post-processed before the release files are copied in beside them.
  integrations: [convlensEscapeAttributeBrackets(), convlensArtifacts()],
});
