import { defineConfig } from 'vitest/config';

/**
 * Tiers: test/unit (pure logic, tiny models), test/method (one file per method, hand-computed
 * maps), test/end-to-end (CLI + site build), test/browser (real Chromium). One run takes them
 * all; tfjs state is per process, so files run in forked workers.
 */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    env: { ASTRO_TELEMETRY_DISABLED: '1' },
  },
});
