/**
 * Releases of the bundled service for the `local` target:
 *
 *   <stateDir>/releases/<version>/release.json          {version, source, sourceKind, createdAt, migrationsHead, sha256}
 *   <stateDir>/releases/<version>/package.json          {"type": "module"} (+ the release's own dependencies, if any)
 *   <stateDir>/releases/<version>/service/src/*.js       the service's compiled JavaScript
 *   <stateDir>/releases/<version>/service/migrations/    its migrations
 *   <stateDir>/releases/<version>/node_modules           its dependencies (`npm ci`) or a link to charge-ops' own
 *   <stateDir>/releases/current -> <version>             the release `service start` runs, switched atomically
 *
 * A version source (`upgrade --to`) is a release directory, a project checkout (built: dist/service/src,
 * or sources only: compiled here), a tarball (.tar.gz / .tgz) of either, or a git ref of the
 * charge-ops repository (`git archive`, then compiled). It is staged under releases/.staging-* first
 * (preflight lints its migrations from there) and moved into place by one rename.
 */
import {createHash, randomBytes} from 'node:crypto'
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import {basename, dirname, join, relative, resolve} from 'node:path'

import type {Settings} from '../config/settings.js'
import {CliError, ExitCode, UsageError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import {pidAlive} from '../core/proc/pid.js'

export interface ReleaseInfo {
  version: string
  source: string
  sourceKind: SourceKind
  createdAt: string
  migrationsHead: string | null
  /** sha256 over the release's service files (what "the same release" means on a rerun) */
  sha256: string
}

export type SourceKind = 'release' | 'checkout' | 'sources' | 'tarball' | 'git'

export interface StagedRelease {
  info: ReleaseInfo
  /** where it is staged (renamed to `finalDir` by step 3) */
  stagingDir: string
  finalDir: string
  migrationsDir: string
}

export const releasesDir = (settings: Pick<Settings, 'stateDir'>) => join(settings.stateDir, 'releases')
export const currentLink = (settings: Pick<Settings, 'stateDir'>) => join(releasesDir(settings), 'current')
export const releaseMigrationsDir = (releaseDir: string) => join(releaseDir, 'service', 'migrations')

/** The project root of charge-ops (holds node_modules, dist/, service/). */
export async function projectRoot(): Promise<string> {
  const {packageRoot} = await import('../migrate/locate.js')
  return packageRoot()
}

/** The release `current` points at (its real path), or null when the bundled service runs. */
export function currentRelease(settings: Pick<Settings, 'stateDir'>): string | null {
  const link = currentLink(settings)
  try {
    lstatSync(link)
  } catch {
    return null
  }
  try {
    return realpathSync(link)
  } catch {
    return null // dangling
  }
}

export function readReleaseInfo(dir: string): ReleaseInfo | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'release.json'), 'utf8')) as ReleaseInfo
  } catch {
    return undefined
  }
}

/**
 * Points `releases/current` at `releaseDir` (null: removes it, the bundled service runs again).
 * A new link at a temporary name renamed over the old one: a kill leaves the old or the new link.
 */
export function switchCurrent(settings: Pick<Settings, 'stateDir'>, releaseDir: string | null): void {
  const link = currentLink(settings)
  if (releaseDir === null) {
    rmSync(link, {force: true})
    return
  }
  mkdirSync(dirname(link), {recursive: true})
  const temp = `${link}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`
  symlinkSync(relative(dirname(link), releaseDir) || '.', temp)
  renameSync(temp, link)
}

/** The version a service tree declares (`SERVICE_VERSION = '…'` in version.js / version.ts). */
export function declaredVersion(serviceSrcDir: string): string | undefined {
  for (const name of ['version.js', 'version.ts']) {
    const file = join(serviceSrcDir, name)
    if (!existsSync(file)) continue
    const m = /SERVICE_VERSION\s*(?::\s*string\s*)?=\s*['"`]([^'"`]+)['"`]/.exec(readFileSync(file, 'utf8'))
    if (m) return m[1]
  }
  return undefined
}

export function migrationsHeadOf(dir: string): string | null {
  if (!existsSync(dir)) return null
  const versions = readdirSync(dir)
    .map((f) => /^(\d+)_.+\.sql$/.exec(f)?.[1])
    .filter((v): v is string => v !== undefined)
    .sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0))
  return versions.at(-1) ?? null
}

function hashTree(dir: string): string {
  const hash = createHash('sha256')
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name)
      const st = lstatSync(p)
      if (st.isDirectory()) walk(p)
      else if (st.isFile()) {
        hash.update(relative(dir, p) + '\0')
        hash.update(readFileSync(p))
      }
    }
  }
  walk(dir)
  return hash.digest('hex')
}

const isTarball = (path: string) => /\.(tar\.gz|tgz)$/i.test(path)
const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$/

/** What `--to` names: an existing directory or tarball, else a git ref of the charge-ops repository. */
export function classifySource(to: string, cwd = process.cwd()): {kind: 'directory' | 'tarball' | 'git'; path: string} {
  const path = resolve(cwd, to)
  if (existsSync(path)) {
    const st = statSync(path)
    if (st.isDirectory()) return {kind: 'directory', path}
    if (isTarball(path)) return {kind: 'tarball', path}
    throw new UsageError(`--to ${to}: a file that is not a .tar.gz / .tgz tarball`, {
      hint: 'Pass a release directory, a project checkout, a .tar.gz of one, or a git ref.',
    })
  }
  return {kind: 'git', path: to}
}

/** Compiles a service's TypeScript sources to ESM JavaScript (no type check: the release was checked where it was built). */
async function compileService(srcDir: string, outDir: string): Promise<void> {
  const {run} = await import('../core/proc/exec.js')
  const root = await projectRoot()
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  if (!existsSync(tsc))
    throw new CliError(
      'TYPESCRIPT_MISSING',
      ExitCode.unreachable,
      `cannot build the service from sources: ${tsc} is missing`,
      {
        hint: 'Pass a built release (a directory with dist/service/src or a release tarball), or run `npm ci` in charge-ops.',
      },
    )
  const files = readdirSync(srcDir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => join(srcDir, f))
  await run(
    process.execPath,
    [
      tsc,
      '--noCheck',
      '--outDir',
      outDir,
      '--rootDir',
      srcDir,
      '--module',
      'ES2022',
      '--moduleResolution',
      'Bundler',
      '--target',
      'ES2022',
      '--skipLibCheck',
      '--sourceMap',
      'false',
      ...files,
    ],
    {purpose: 'compile the service (tsc)'},
  )
}

/** Fills `staging` (service/src + service/migrations) from a directory source; returns its kind. */
async function stageFromDirectory(dir: string, staging: string, logger?: Logger): Promise<SourceKind> {
  const into = (p: string) => join(staging, p)
  if (existsSync(join(dir, 'release.json')) && existsSync(join(dir, 'service', 'src', 'server.js'))) {
    cpSync(join(dir, 'service'), into('service'), {recursive: true})
    for (const extra of ['package.json', 'package-lock.json'])
      if (existsSync(join(dir, extra))) cpSync(join(dir, extra), into(extra))
    return 'release'
  }
  const migrations = join(dir, 'service', 'migrations')
  if (!existsSync(migrations))
    throw new UsageError(`${dir} holds no service/migrations: not a release directory or a charge-ops checkout`, {
      hint: 'Pass a release directory (release.json + service/), a charge-ops checkout, a .tar.gz of one, or a git ref.',
    })
  if (existsSync(join(dir, 'dist', 'service', 'src', 'server.js'))) {
    cpSync(join(dir, 'dist', 'service', 'src'), into('service/src'), {
      recursive: true,
      filter: (p) => !p.endsWith('.map'),
    })
    cpSync(migrations, into('service/migrations'), {recursive: true})
    return 'checkout'
  }
  if (existsSync(join(dir, 'service', 'src', 'server.ts'))) {
    logger?.info(`compiling the service from ${join(dir, 'service', 'src')}`)
    await compileService(join(dir, 'service', 'src'), into('service/src'))
    cpSync(migrations, into('service/migrations'), {recursive: true})
    return 'sources'
  }
  throw new UsageError(`${dir} holds neither dist/service/src/server.js nor service/src/server.ts`, {
    hint: 'Build the checkout (`npm run build`) or pass a release directory.',
  })
}

/**
 * Stages `to` under releases/.staging-*: copied / extracted / archived and compiled, release.json
 * written. Changes nothing the running stack uses.
 */
export async function stageRelease(
  settings: Pick<Settings, 'stateDir'>,
  to: string,
  options: {logger?: Logger; cwd?: string; now?: Date} = {},
): Promise<StagedRelease> {
  const source = classifySource(to, options.cwd)
  const dir = releasesDir(settings)
  mkdirSync(dir, {recursive: true})
  const staging = join(dir, `.staging-${process.pid}-${randomBytes(3).toString('hex')}`)
  mkdirSync(staging)
  const scratch = join(dir, `.unpack-${process.pid}-${randomBytes(3).toString('hex')}`)
  try {
    let kind: SourceKind
    if (source.kind === 'directory') {
      kind = await stageFromDirectory(source.path, staging, options.logger)
    } else {
      const {run} = await import('../core/proc/exec.js')
      mkdirSync(scratch)
      if (source.kind === 'tarball') {
        await run('tar', ['-xzf', source.path, '-C', scratch, '--no-same-owner'], {
          purpose: 'extract the release tarball',
        })
      } else {
        const root = await projectRoot()
        const ok = await run('git', ['-C', root, 'rev-parse', '--verify', '--quiet', `${to}^{commit}`]).catch(
          () => undefined,
        )
        if (!ok) {
          throw new UsageError(`--to ${to}: not a directory, a tarball, nor a git ref of ${root}`, {
            hint: 'Pass a release directory, a .tar.gz, or a tag / branch / commit (`git tag` lists the tags).',
          })
        }
        const tarFile = join(scratch, '..', `${basename(scratch)}.tar`)
        await run('git', ['-C', root, 'archive', '--format=tar', `--output=${tarFile}`, to, 'service'], {
          purpose: 'git archive of the new version',
        })
        await run('tar', ['-xf', tarFile, '-C', scratch], {purpose: 'extract the git archive'})
        rmSync(tarFile, {force: true})
      }
      // A tarball usually wraps everything in one top-level directory.
      const entries = readdirSync(scratch)
      const base =
        entries.length === 1 &&
        statSync(join(scratch, entries[0]!)).isDirectory() &&
        !existsSync(join(scratch, 'service'))
          ? join(scratch, entries[0]!)
          : scratch
      const inner = await stageFromDirectory(base, staging, options.logger)
      kind = source.kind === 'git' ? 'git' : inner === 'release' ? 'release' : 'tarball'
    }
    const previous = readReleaseInfo(source.kind === 'directory' ? source.path : staging)
    const version =
      (kind === 'release' ? previous?.version : undefined) ?? declaredVersion(join(staging, 'service', 'src'))
    if (!version)
      throw new UsageError(
        `cannot tell the version of ${to}: no release.json and no SERVICE_VERSION in service/src/version.js`,
        {hint: 'Pass a release built by charge-ops or a checkout of the service.'},
      )
    if (!VERSION_RE.test(version) || version === 'current')
      throw new UsageError(`the version "${version}" of ${to} is not usable as a release name`, {
        hint: 'Versions are letters, digits and . _ + -',
      })
    const pkgFile = join(staging, 'package.json')
    const pkg = existsSync(pkgFile)
      ? (JSON.parse(readFileSync(pkgFile, 'utf8')) as Record<string, unknown>)
      : {name: 'charge-analysis-release', private: true}
    writeFileSync(pkgFile, JSON.stringify({...pkg, version, type: 'module'}, null, 2) + '\n')
    const info: ReleaseInfo = {
      version,
      source: source.kind === 'git' ? to : source.path,
      sourceKind: kind,
      createdAt: (options.now ?? new Date()).toISOString(),
      migrationsHead: migrationsHeadOf(join(staging, 'service', 'migrations')),
      sha256: hashTree(join(staging, 'service')),
    }
    writeFileSync(join(staging, 'release.json'), JSON.stringify(info, null, 2) + '\n')
    return {info, stagingDir: staging, finalDir: join(dir, version), migrationsDir: releaseMigrationsDir(staging)}
  } catch (error) {
    rmSync(staging, {recursive: true, force: true})
    throw error
  } finally {
    rmSync(scratch, {recursive: true, force: true})
  }
}

/**
 * Step 3: moves the staged release to releases/<version>. An existing directory with the same
 * content is reused; one with other content is kept aside as <version>.replaced-<time> (never
 * deleted while it may be the running release).
 */
export function placeRelease(staged: StagedRelease, options: {now?: Date} = {}): {dir: string; reused: boolean} {
  if (!existsSync(staged.stagingDir)) {
    if (readReleaseInfo(staged.finalDir)?.sha256 === staged.info.sha256) return {dir: staged.finalDir, reused: true}
    throw new CliError(
      'RELEASE_STAGING_MISSING',
      ExitCode.findings,
      `the staged release ${staged.stagingDir} is gone`,
      {hint: 'Rerun the upgrade.'},
    )
  }
  if (existsSync(staged.finalDir)) {
    if (readReleaseInfo(staged.finalDir)?.sha256 === staged.info.sha256) {
      rmSync(staged.stagingDir, {recursive: true, force: true})
      return {dir: staged.finalDir, reused: true}
    }
    const stamp = (options.now ?? new Date()).toISOString().replace(/[-:.]/g, '')
    renameSync(staged.finalDir, `${staged.finalDir}.replaced-${stamp}`)
  }
  renameSync(staged.stagingDir, staged.finalDir)
  return {dir: staged.finalDir, reused: false}
}

/** Removes a staging directory left by a preflight / dry run / killed run. */
export function discardStaging(staged: StagedRelease | undefined): void {
  if (staged && existsSync(staged.stagingDir)) rmSync(staged.stagingDir, {recursive: true, force: true})
}

/** Staging dirs of dead runs (a kill between preflight and step 3). */
export function cleanStaleStaging(settings: Pick<Settings, 'stateDir'>): string[] {
  const dir = releasesDir(settings)
  if (!existsSync(dir)) return []
  const removed: string[] = []
  for (const name of readdirSync(dir)) {
    const m = /^\.(?:staging|unpack)-(\d+)-/.exec(name)
    if (!m) continue
    const pid = Number(m[1])
    if (!pidAlive(pid) || pid === process.pid) continue
    rmSync(join(dir, name), {recursive: true, force: true})
    removed.push(name)
  }
  return removed
}

export interface InstallResult {
  mode: 'npm-ci' | 'linked'
  detail: string
}

/**
 * Step 4. A release that ships its own package.json with dependencies gets `npm ci --omit=dev`
 * (`npm install --omit=dev` without a lock file); the service built from charge-ops (checkout,
 * sources, git ref) uses charge-ops' own node_modules through a symlink — its dependencies are
 * charge-ops' dependencies, already installed and tested together.
 */
export async function installDependencies(releaseDir: string, options: {logger?: Logger} = {}): Promise<InstallResult> {
  const pkg = JSON.parse(readFileSync(join(releaseDir, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>
  }
  const link = join(releaseDir, 'node_modules')
  const deps = Object.keys(pkg.dependencies ?? {})
  if (deps.length > 0) {
    const {run} = await import('../core/proc/exec.js')
    const lock = existsSync(join(releaseDir, 'package-lock.json'))
    if (isLink(link)) rmSync(link)
    options.logger?.info(`installing ${deps.length} dependencies with npm ${lock ? 'ci' : 'install'} --omit=dev`)
    await run('npm', [lock ? 'ci' : 'install', '--omit=dev', '--no-audit', '--no-fund'], {
      cwd: releaseDir,
      purpose: 'install the release dependencies (npm)',
    })
    return {mode: 'npm-ci', detail: `${deps.length} dependencies installed`}
  }
  const target = join(await projectRoot(), 'node_modules')
  if (isLink(link) && resolve(dirname(link), readlinkSync(link)) === target)
    return {mode: 'linked', detail: `node_modules → ${target}`}
  const temp = `${link}.${process.pid}.tmp`
  rmSync(temp, {force: true})
  symlinkSync(target, temp)
  renameSync(temp, link)
  return {mode: 'linked', detail: `node_modules → ${target}`}
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink()
  } catch {
    return false
  }
}
