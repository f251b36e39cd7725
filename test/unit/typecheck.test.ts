import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The type checks, in the test run so CI refuses a type error: tsc over the TypeScript files
 * (pipeline, site helpers, tests, benchmarks) and `astro check` over the .astro pages and
 * components (errors and warnings; hints such as unused imports do not fail).
 */
const ROOT = resolve(import.meta.dirname, '../..');
const run = (script: string, args: string[]) => spawnSync(process.execPath, [resolve(ROOT, script), ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ASTRO_TELEMETRY_DISABLED: '1', FORCE_COLOR: '0' } });

describe('type checks', () => {
  it('tsc --noEmit finds no error', () => {
    const r = run('node_modules/typescript/bin/tsc', ['--noEmit', '-p', 'tsconfig.json']);
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  }, 120_000);

  it('astro check finds no error or warning in the .astro files', () => {
    const r = run('node_modules/astro/astro.js', ['check', '--minimumSeverity', 'warning']);
    const out = `${r.stdout}${r.stderr}`;
    expect(out, out).toMatch(/0 errors\s*\n\s*- 0 warnings/);
    expect(r.status).toBe(0);
  }, 180_000);
});
