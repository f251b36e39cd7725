import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';

/**
 * examples/github-pages.yml: the GitHub Pages workflow keeps the release history on a branch
 * (restored before the report, saved after a successful one), never in actions/cache. The first
 * part checks the workflow's structure; the second runs its restore and save scripts, with a
 * stand-in for the report, against a local bare repository (needs git and bash, no network).
 */

const file = join(import.meta.dirname, '..', '..', 'examples', 'github-pages.yml');

type Dict = Record<string, unknown>;
interface Step { name?: string; id?: string; uses?: string; run?: string; with?: Dict; env?: Dict; if?: string }
interface Job { permissions?: Dict | string; steps: Step[]; needs?: string | string[]; env?: Dict; environment?: Dict; defaults?: { run?: { shell?: string } } }

function load(): Dict {
  const doc = parseDocument(readFileSync(file, 'utf8'), { uniqueKeys: true });
  expect(doc.errors.map((e) => e.message)).toEqual([]);
  expect(doc.warnings.map((e) => e.message)).toEqual([]);
  return doc.toJS() as Dict;
}

const wf = load();
const jobs = wf.jobs as Record<string, Job>;

/** A job's permissions: its own block replaces the workflow's (GitHub's rule). */
function permissions(job: Job): Dict {
  const p = job.permissions ?? wf.permissions;
  expect(typeof p, 'permissions spelled out per scope').toBe('object');
  return p as Dict;
}

const allSteps = Object.values(jobs).flatMap((j) => j.steps);
const stepUsing = (steps: Step[], action: string) => steps.findIndex((s) => s.uses?.split('@')[0] === action);
const stepRunning = (steps: Step[], re: RegExp) => steps.findIndex((s) => s.run !== undefined && re.test(s.run));

const [reportJobName, reportJob] = Object.entries(jobs).find(([, j]) => stepRunning(j.steps, /convlens report/) >= 0)!;
const steps = reportJob.steps;
const restore = stepRunning(steps, /git (fetch|archive)/);
const report = stepRunning(steps, /npx convlens report/);
const save = stepRunning(steps, /git push/);

describe('examples/github-pages.yml: structure', () => {
  it('runs on release tags and by hand', () => {
    const on = wf.on as Dict;
    expect((on.push as Dict).tags).toContain('v*');
    expect(on).toHaveProperty('workflow_dispatch');
  });

  it('lets one run at a time touch the history and the site, never cancelling a running one', () => {
    const c = wf.concurrency as Dict;
    expect(typeof c.group).toBe('string');
    expect((c.group as string).length).toBeGreaterThan(0);
    expect(c['cancel-in-progress']).toBe(false);
  });

  it('gives contents: write to the job that pushes the history, Pages rights only to the deploy job', () => {
    expect(permissions(reportJob).contents).toBe('write');
    const [deployName, deployJob] = Object.entries(jobs).find(([, j]) => stepUsing(j.steps, 'actions/deploy-pages') >= 0)!;
    expect(deployName).not.toBe(reportJobName);
    expect(permissions(deployJob)).toMatchObject({ pages: 'write', 'id-token': 'write' });
    expect(permissions(deployJob).contents ?? 'none').not.toBe('write');
    expect([deployJob.needs].flat()).toContain(reportJobName);
    expect(deployJob.environment?.name).toBe('github-pages');
    expect(String(deployJob.environment?.url)).toContain(`steps.${deployJob.steps[stepUsing(deployJob.steps, 'actions/deploy-pages')].id}.outputs.page_url`);
  });

  it('restores the history before the report and saves it after, before the site is uploaded', () => {
    const checkout = stepUsing(steps, 'actions/checkout');
    const upload = stepUsing(steps, 'actions/upload-pages-artifact');
    for (const i of [checkout, restore, report, save, upload]) expect(i).toBeGreaterThanOrEqual(0);
    expect(checkout).toBeLessThan(restore);
    expect(restore).toBeLessThan(report);
    expect(report).toBeLessThan(save);
    expect(save).toBeLessThan(upload);
    // Only after a successful report: no `if:` that would run it after a failure.
    expect(steps[save].if ?? 'success()').not.toMatch(/always\(\)|failure\(\)|cancelled\(\)/);
    expect(steps[save]).not.toHaveProperty('continue-on-error');
    expect(steps[report]).not.toHaveProperty('continue-on-error');
    // Both scripts name the same branch, and the push is guarded by a lease.
    expect(steps[restore].run).toContain('$HISTORY_BRANCH');
    expect(steps[save].run).toContain('$HISTORY_BRANCH');
    expect(reportJob.env?.HISTORY_BRANCH).toBe('convlens-releases');
    expect(steps[save].run).toMatch(/--force-with-lease=\S*\$HISTORY_BRANCH:\$RESTORED/);
    // A failing command inside a pipe (git archive | tar) fails the step.
    expect(reportJob.defaults?.run?.shell).toBe('bash');
  });

  it('builds the report with viz.yaml, the tag as release and /REPO/ as base', () => {
    expect(steps[report].run).toMatch(/npx convlens report --config viz\.yaml/);
    const env = { ...reportJob.env, ...steps[report].env };
    expect(env.CONVLENS_RELEASE).toBe('${{ github.ref_name }}');
    expect(env.CONVLENS_BASE).toBe('/${{ github.event.repository.name }}/');
  });

  it('keeps no releases in actions/cache', () => {
    expect(stepUsing(allSteps, 'actions/cache')).toBe(-1);
    expect(allSteps.filter((s) => /^actions\/cache\//.test(s.uses ?? ''))).toEqual([]);
    for (const s of allSteps) expect(JSON.stringify(s.with ?? {})).not.toMatch(/releases/);
  });

  it('deploys with upload-pages-artifact and deploy-pages, with inputs those actions have', () => {
    const upload = steps[stepUsing(steps, 'actions/upload-pages-artifact')];
    expect(upload.uses).toBe('actions/upload-pages-artifact@v3');
    expect(Object.keys(upload.with ?? {}).every((k) => ['name', 'path', 'retention-days'].includes(k))).toBe(true);
    expect(String(upload.with?.path)).toMatch(/\/site$/);
    const deploy = allSteps[stepUsing(allSteps, 'actions/deploy-pages')];
    expect(deploy.uses).toBe('actions/deploy-pages@v4');
    expect(Object.keys(deploy.with ?? {}).every((k) => ['token', 'timeout', 'error_count', 'reporting_interval', 'artifact_name', 'preview'].includes(k))).toBe(true);
  });

  it('puts no ${{ }} expression inside a script (values come in through env)', () => {
    for (const s of allSteps) if (s.run) expect(s.run).not.toContain('${{');
  });
});

// ---- the scripts, run against a local repository -----------------------------------------------

const haveTools = process.platform !== 'win32'
  && spawnSync('git', ['--version']).status === 0 && spawnSync('bash', ['--version']).status === 0;

describe.skipIf(!haveTools)('examples/github-pages.yml: restore and save against a local repository', () => {
  const root = mkdtempSync(join(tmpdir(), 'convlens-pages-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const origin = join(root, 'origin.git');
  const branch = reportJob.env!.HISTORY_BRANCH as string;
  const outputDir = reportJob.env!.OUTPUT_DIR as string;
  const gitEnv = {
    ...process.env,
    GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'test', GIT_AUTHOR_EMAIL: 'test@example.com',
    GIT_COMMITTER_NAME: 'test', GIT_COMMITTER_EMAIL: 'test@example.com',
  };
  const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, env: gitEnv, encoding: 'utf8' }).trim();
  const bash = (cwd: string, script: string, env: Dict) =>
    spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', script], { cwd, env: { ...gitEnv, ...env } as NodeJS.ProcessEnv, encoding: 'utf8' });

  // The user's repository: one commit on main, as the workflow's checkout sees it.
  git(root, 'init', '-q', '--bare', '-b', 'main', origin);
  const seed = join(root, 'seed');
  git(root, 'init', '-q', '-b', 'main', seed);
  writeFileSync(join(seed, 'viz.yaml'), 'model:\n  path: models/m\n');
  git(seed, 'add', '.');
  git(seed, 'commit', '-q', '-m', 'seed');
  git(seed, 'push', '-q', origin, 'main');

  /** Stands in for `convlens report`: writes the release through a hidden staging folder, as the pipeline does. */
  const fakeReport = (dir: string, release: string, build: string) => {
    const releases = join(dir, outputDir, 'releases');
    const staging = join(releases, `.${release}.staging-0a1b2c3d`);
    mkdirSync(staging, { recursive: true });
    writeFileSync(join(staging, 'manifest.json'), JSON.stringify({ release, build }));
    writeFileSync(join(staging, 'map.npy'), `${release} ${build}`);
    rmSync(join(releases, release), { recursive: true, force: true });
    execFileSync('mv', [staging, join(releases, release)]);
    mkdirSync(join(releases, '.old.staging-ffff'), { recursive: true }); // work in progress left behind
    mkdirSync(join(releases, 'no-manifest'), { recursive: true });
  };

  let runs = 0;
  /** One workflow run up to the save step; `between` runs after the report, before the save. */
  const run = (release: string, build = '1', between?: () => void) => {
    const dir = join(root, `run-${++runs}`);
    git(root, 'clone', '-q', '--depth=1', '--branch', 'main', `file://${origin}`, dir);
    const out = join(root, `output-${runs}.txt`);
    writeFileSync(out, '');
    const env = { HISTORY_BRANCH: branch, OUTPUT_DIR: outputDir, CONVLENS_RELEASE: release, GITHUB_OUTPUT: out, RUNNER_TEMP: mkdtempSync(join(root, 'tmp-')), GITHUB_RUN_ID: String(runs) };
    const restored = bash(dir, steps[restore].run!, env);
    if (restored.status !== 0) return { restored, dir };
    const before = readFileSync(out, 'utf8');
    fakeReport(dir, release, build);
    between?.();
    const RESTORED = /^restored=(.*)$/m.exec(before)?.[1] ?? '';
    const saved = bash(dir, steps[save].run!, { ...env, RESTORED });
    return { restored, saved, dir, before };
  };
  const onBranch = () => git(origin, 'ls-tree', '-r', '--name-only', branch).split('\n').sort();
  const showOnBranch = (path: string) => git(origin, 'show', `${branch}:${path}`);

  it('first run: no branch yet; the run creates it with its release only', () => {
    const r = run('v1.0.0');
    expect(r.restored.status, r.restored.stderr).toBe(0);
    expect(r.before).toMatch(/^restored=$/m);
    expect(r.saved!.status, r.saved!.stderr).toBe(0);
    expect(onBranch()).toEqual(['releases/v1.0.0/manifest.json', 'releases/v1.0.0/map.npy']);
  });

  it('a later run restores the earlier releases before the report and adds its own', () => {
    const r = run('v1.1.0');
    expect(r.saved!.status, r.saved!.stderr).toBe(0);
    expect(readFileSync(join(r.dir, outputDir, 'releases', 'v1.0.0', 'manifest.json'), 'utf8')).toContain('v1.0.0');
    expect(onBranch()).toEqual(['releases/v1.0.0/manifest.json', 'releases/v1.0.0/map.npy', 'releases/v1.1.0/manifest.json', 'releases/v1.1.0/map.npy']);
    // One commit, no history: the branch weighs what its releases weigh.
    expect(git(origin, 'rev-list', '--count', branch)).toBe('1');
  });

  it('a release that is already on the branch is replaced', () => {
    const r = run('v1.1.0', '2');
    expect(r.saved!.status, r.saved!.stderr).toBe(0);
    expect(JSON.parse(showOnBranch('releases/v1.1.0/manifest.json'))).toEqual({ release: 'v1.1.0', build: '2' });
    expect(JSON.parse(showOnBranch('releases/v1.0.0/manifest.json'))).toEqual({ release: 'v1.0.0', build: '1' });
  });

  it('a release pruned from the branch stays gone', () => {
    const prune = join(root, 'prune');
    git(root, 'clone', '-q', '--branch', branch, `file://${origin}`, prune);
    git(prune, 'rm', '-r', '-q', 'releases/v1.0.0');
    git(prune, 'commit', '-q', '-m', 'prune v1.0.0');
    git(prune, 'push', '-q', 'origin', branch);
    const r = run('v1.2.0');
    expect(r.saved!.status, r.saved!.stderr).toBe(0);
    expect(onBranch().filter((p) => p.endsWith('manifest.json'))).toEqual(['releases/v1.1.0/manifest.json', 'releases/v1.2.0/manifest.json']);
  });

  it('the push fails, and overwrites nothing, when the branch moved since the restore', () => {
    let moved = '';
    const r = run('v1.3.0', '1', () => {
      const other = join(root, 'other');
      git(root, 'clone', '-q', '--branch', branch, `file://${origin}`, other);
      git(other, 'rm', '-r', '-q', 'releases/v1.1.0');
      git(other, 'commit', '-q', '-m', 'prune v1.1.0');
      git(other, 'push', '-q', 'origin', branch);
      moved = git(other, 'rev-parse', 'HEAD');
    });
    expect(r.saved!.status).not.toBe(0);
    expect(r.saved!.stderr).toMatch(/stale info|rejected/);
    expect(git(origin, 'rev-parse', branch)).toBe(moved);
  });

  it('stops before the report when the remote cannot be listed (not mistaken for a first run)', () => {
    const dir = join(root, 'unreachable');
    git(root, 'clone', '-q', '--depth=1', '--branch', 'main', `file://${origin}`, dir);
    git(dir, 'remote', 'set-url', 'origin', join(root, 'missing.git'));
    const out = join(root, 'output-unreachable.txt');
    writeFileSync(out, '');
    const r = bash(dir, steps[restore].run!, { HISTORY_BRANCH: branch, OUTPUT_DIR: outputDir, GITHUB_OUTPUT: out });
    expect(r.status).not.toBe(0);
    expect(readFileSync(out, 'utf8')).not.toMatch(/^restored=$/m);
  });
});
