/**
 * `charge-ops images build`: the stack's images (images/<name>/Dockerfile) built from the installed
 * charge-ops itself — never from an unpublished package or a pulled application image. The service
 * image gets this package (bin, dist, service, templates and its production node_modules) and the
 * npm registry's Node binary of the very version running this command, so that native modules
 * (better-sqlite3) match the Node ABI they were built for.
 *
 * Rebuilds are skipped when nothing changed: each image is labelled with a fingerprint of its
 * Dockerfile, its build arguments (base image ids included) and its context's sources, and an
 * image that carries the same fingerprint is kept as it is.
 */
import {createHash} from 'node:crypto'
import {existsSync, mkdirSync, readdirSync, readFileSync, statSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {homedir, tmpdir} from 'node:os'
import {join, relative} from 'node:path'

import {UnreachableError, UsageError} from '../errors.js'
import {run} from '../core/proc/exec.js'
import {packageRoot} from '../service/process.js'
import {IMAGE_NAMES, imageRef, type ImageName} from '../topology/index.js'

export interface BuildOptions {
  version: string
  prefix: string
  /** the Debian bookworm base (service, postgres, redis, nginx) */
  base: string
  /** the Debian trixie base (chroma: glibc >= 2.39) */
  trixieBase: string
  only?: ImageName[]
  /** rebuild even when the fingerprint matches */
  force?: boolean
  /** progress lines (stderr) */
  progress: (line: string) => void
  env?: NodeJS.ProcessEnv
}

export interface BuiltImage {
  name: ImageName
  ref: string
  id: string
  built: boolean
  seconds: number
}

export interface BuildResult {
  version: string
  prefix: string
  images: BuiltImage[]
}

const FINGERPRINT_LABEL = 'org.charge-ops.fingerprint'

/** The files of the package that go into the service image (package.json "files" + the manifest). */
const PACKAGE_ENTRIES = ['bin', 'dist', 'templates', 'service', 'oclif.manifest.json', 'package.json']

function hashTree(hash: ReturnType<typeof createHash>, path: string, root: string): void {
  if (!existsSync(path)) return
  const st = statSync(path)
  if (st.isDirectory()) {
    for (const entry of readdirSync(path).sort()) if (entry !== '.build-stamp') hashTree(hash, join(path, entry), root)
    return
  }
  hash.update(`${relative(root, path)}\0${st.mode & 0o111 ? 'x' : '-'}\0`)
  hash.update(readFileSync(path))
}

/** Production dependency folders (top level of node_modules), from package-lock.json when present. */
export function productionModules(root: string): string[] {
  const lockFile = join(root, 'package-lock.json')
  if (!existsSync(lockFile)) return existsSync(join(root, 'node_modules')) ? ['node_modules'] : []
  const lock = JSON.parse(readFileSync(lockFile, 'utf8')) as {packages?: Record<string, {dev?: boolean}>}
  return Object.entries(lock.packages ?? {})
    .filter(
      ([path, meta]) =>
        path.startsWith('node_modules/') && !meta.dev && !path.slice('node_modules/'.length).includes('node_modules/'),
    )
    .map(([path]) => path)
    .filter((path) => existsSync(join(root, path)))
}

/**
 * The top-level node_modules folders that `names` need at run time: each dependency (optional ones
 * included) resolved as Node does, from the requiring package's own node_modules up to the top;
 * a nested hit lives inside its top-level folder, which is what is copied. The chroma image needs
 * only `chromadb`'s (7 folders, 54 MB, where every production module is 195 MB).
 */
export function moduleClosure(root: string, names: string[]): string[] {
  const lockFile = join(root, 'package-lock.json')
  if (!existsSync(lockFile)) return productionModules(root)
  const packages =
    (
      JSON.parse(readFileSync(lockFile, 'utf8')) as {
        packages?: Record<
          string,
          {dependencies?: Record<string, string>; optionalDependencies?: Record<string, string>}
        >
      }
    ).packages ?? {}
  const resolveFrom = (from: string, dep: string): string | undefined => {
    for (let base = from; ;) {
      const candidate = `${base ? `${base}/` : ''}node_modules/${dep}`
      if (packages[candidate]) return candidate
      if (!base) return undefined
      const i = base.lastIndexOf('/node_modules/')
      base = i === -1 ? '' : base.slice(0, i)
    }
  }
  const seen = new Set<string>()
  const queue = names.flatMap((n) => resolveFrom('', n) ?? [])
  while (queue.length > 0) {
    const path = queue.pop()!
    if (seen.has(path)) continue
    seen.add(path)
    const meta = packages[path]!
    for (const dep of Object.keys({...meta.dependencies, ...meta.optionalDependencies})) {
      const found = resolveFrom(path, dep)
      if (found) queue.push(found)
    }
  }
  const topLevel = (path: string) => /^node_modules\/(@[^/]+\/)?[^/]+/.exec(path)![0]
  return [...new Set([...seen].map(topLevel))].filter((path) => existsSync(join(root, path))).sort()
}

async function docker(args: string[], options: BuildOptions, purpose: string) {
  return run('docker', args, {env: {...(options.env ?? process.env), DOCKER_BUILDKIT: '0'}, purpose})
}

async function imageInfo(ref: string, options: BuildOptions): Promise<{id: string; fingerprint?: string} | undefined> {
  try {
    // json, not `index`: an imported base image has no labels at all, and index of nil fails
    const {stdout} = await docker(
      ['image', 'inspect', '--format', '{{.Id}} {{json .Config.Labels}}', ref],
      options,
      `inspect ${ref}`,
    )
    const text = stdout.trim()
    const space = text.indexOf(' ')
    const labels = (JSON.parse(text.slice(space + 1)) ?? {}) as Record<string, string>
    return {id: text.slice(0, space), fingerprint: labels[FINGERPRINT_LABEL]}
  } catch {
    return undefined
  }
}

/** The npm registry's Node binary package for this Node version, cached under ~/.cache/charge-ops/node. */
async function nodeTarball(options: BuildOptions): Promise<string> {
  const arch = process.arch === 'arm64' ? 'arm64' : process.arch === 'x64' ? 'x64' : undefined
  if (!arch)
    throw new UsageError(`images build supports x64 and arm64, not ${process.arch}`, {code: 'IMAGES_UNSUPPORTED_ARCH'})
  const version = process.versions.node
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'charge-ops', 'node')
  const file = join(dir, `node-linux-${arch}-${version}.tgz`)
  if (existsSync(file)) return file
  mkdirSync(dir, {recursive: true})
  options.progress(`fetching node-linux-${arch}@${version} from the npm registry`)
  // npm verifies the registry's integrity hash; the file is renamed into place by npm pack itself.
  await run('npm', ['pack', `node-linux-${arch}@${version}`, '--pack-destination', dir, '--silent'], {
    purpose: 'fetch the Node binary for the images',
  })
  if (!existsSync(file))
    throw new UnreachableError(`npm pack did not produce ${file}`, {
      code: 'IMAGES_NODE_FETCH',
      hint: 'Check that the npm registry is reachable (npm config get registry).',
    })
  return file
}

/** Hard links when the cache and the package share a file system (fast), else copies. */
async function copyInto(source: string, target: string): Promise<void> {
  mkdirSync(join(target, '..'), {recursive: true})
  try {
    await run('cp', ['-al', source, target])
  } catch {
    await run('cp', ['-a', source, target])
  }
}

interface Plan {
  name: ImageName
  dockerfileDir: string
  /** files to place into a prepared context (absolute source → relative target) */
  prepare?: (context: string) => Promise<void>
  /** what the fingerprint covers besides the Dockerfile folder and the build args */
  sources: string[]
  args: Record<string, string>
}

/** What buildImages works from: this installation's files and the base images' ids. */
interface PlanInputs {
  root: string
  imagesDir: string
  options: BuildOptions
  want: Set<ImageName>
  baseId(ref: string): Promise<string>
}

/** One plan per image asked for (postgres brings service: it is built FROM it), in build order. */
async function imagePlans({root, imagesDir, options, want, baseId}: PlanInputs): Promise<Plan[]> {
  const node = want.has('service') || want.has('chroma') ? await nodeTarball(options) : ''
  const modules = want.has('service') || want.has('chroma') ? productionModules(root) : []
  const ref = (name: ImageName) => imageRef(name, options.version, options.prefix)
  // the web UI's build (npm run build: web/ → dist/web), served by the nginx image
  const webDist = join(root, 'dist', 'web')

  const packageContext = async (context: string, dir: string) => {
    for (const entry of PACKAGE_ENTRIES)
      if (existsSync(join(root, entry))) await copyInto(join(root, entry), join(context, dir, entry))
    for (const path of modules) await copyInto(join(root, path), join(context, dir, path))
    await copyInto(node, join(context, 'node.tgz'))
  }
  const lockSource = existsSync(join(root, 'package-lock.json'))
    ? [join(root, 'package-lock.json')]
    : [join(root, 'node_modules', '.package-lock.json')]

  const plans: Plan[] = []
  if (want.has('service')) {
    plans.push({
      name: 'service',
      dockerfileDir: join(imagesDir, 'service'),
      prepare: (c) => packageContext(c, 'charge-ops'),
      sources: [...PACKAGE_ENTRIES.map((e) => join(root, e)), ...lockSource, node],
      args: {BASE: options.base, BASE_ID: await baseId(options.base)},
    })
  }
  if (want.has('postgres'))
    plans.push({
      name: 'postgres',
      dockerfileDir: join(imagesDir, 'postgres'),
      sources: [],
      args: {SERVICE_IMAGE: ref('service'), BASE: options.base, BASE_ID: await baseId(options.base)},
    })
  if (want.has('chroma')) {
    plans.push({
      name: 'chroma',
      dockerfileDir: join(imagesDir, 'chroma'),
      prepare: async (c) => {
        for (const path of moduleClosure(root, ['chromadb'])) await copyInto(join(root, path), join(c, 'chroma', path))
        await copyInto(node, join(c, 'node.tgz'))
      },
      sources: [...lockSource, node],
      args: {BASE: options.trixieBase, BASE_ID: await baseId(options.trixieBase)},
    })
  }
  if (want.has('redis'))
    plans.push({
      name: 'redis',
      dockerfileDir: join(imagesDir, 'redis'),
      sources: [],
      args: {BASE: options.base, BASE_ID: await baseId(options.base)},
    })
  if (want.has('nginx')) {
    plans.push({
      name: 'nginx',
      dockerfileDir: join(imagesDir, 'nginx'),
      prepare: async (c) => {
        // the web UI's built files when this installation has them (dist/web), else an empty site
        if (existsSync(webDist)) await copyInto(webDist, join(c, 'web'))
        else mkdirSync(join(c, 'web'), {recursive: true})
      },
      sources: [webDist],
      args: {BASE: options.base, BASE_ID: await baseId(options.base)},
    })
  }
  return plans
}

/** Builds one image unless an image with the same fingerprint (inputs and build args) is already there. */
async function buildPlan(plan: Plan, root: string, options: BuildOptions): Promise<BuiltImage> {
  const ref = (name: ImageName) => imageRef(name, options.version, options.prefix)
  const started = Date.now()
  const target = ref(plan.name)
  const args = {
    ...plan.args,
    VERSION: options.version,
    ...(plan.name === 'postgres' ? {SERVICE_ID: (await imageInfo(ref('service'), options))?.id ?? ''} : {}),
  }
  const hash = createHash('sha256')
  hash.update(JSON.stringify(args))
  hashTree(hash, plan.dockerfileDir, plan.dockerfileDir)
  for (const source of plan.sources) hashTree(hash, source, root)
  const fingerprint = hash.digest('hex').slice(0, 32)
  const existing = await imageInfo(target, options)
  if (existing && existing.fingerprint === fingerprint && !options.force) {
    options.progress(`${target}: up to date`)
    return {name: plan.name, ref: target, id: existing.id, built: false, seconds: 0}
  }
  options.progress(`${target}: building`)
  let context = plan.dockerfileDir
  let temp: string | undefined
  if (plan.prepare) {
    temp = await mkdtemp(join(process.env.CHARGE_OPS_STAGING_DIR ?? tmpdir(), `charge-ops-image-${plan.name}-`))
    for (const entry of readdirSync(plan.dockerfileDir))
      await copyInto(join(plan.dockerfileDir, entry), join(temp, entry))
    await plan.prepare(temp)
    context = temp
  }
  try {
    const buildArgs = Object.entries(args)
      .filter(([key]) => !key.endsWith('_ID'))
      .flatMap(([key, value]) => ['--build-arg', `${key}=${value}`])
    // --network host: RUN steps reach the Debian mirror the way this host does (its proxy, its DNS)
    await docker(
      [
        'build',
        '--network',
        'host',
        '--label',
        `${FINGERPRINT_LABEL}=${fingerprint}`,
        ...buildArgs,
        '-t',
        target,
        context,
      ],
      options,
      `build ${target}`,
    )
  } finally {
    if (temp) await rm(temp, {recursive: true, force: true})
  }
  const info = await imageInfo(target, options)
  const seconds = Math.round((Date.now() - started) / 100) / 10
  options.progress(`${target}: built in ${seconds}s`)
  return {name: plan.name, ref: target, id: info?.id ?? '', built: true, seconds}
}

export async function buildImages(options: BuildOptions): Promise<BuildResult> {
  const root = packageRoot()
  const imagesDir = join(root, 'images')
  if (!existsSync(imagesDir))
    throw new UsageError(`${imagesDir} is missing from this charge-ops installation`, {code: 'IMAGES_MISSING'})
  try {
    await docker(['version', '--format', '{{.Server.Version}}'], options, 'reach the Docker daemon')
  } catch (error) {
    throw new UnreachableError('the Docker daemon is not reachable (`docker version` failed)', {
      code: 'DOCKER_UNREACHABLE',
      hint: 'Start Docker (or set DOCKER_HOST), then rerun.',
      cause: error,
    })
  }
  const baseId = async (ref: string) => {
    const info = await imageInfo(ref, options)
    if (!info)
      throw new UsageError(`the base image ${ref} is not in the Docker daemon`, {
        code: 'IMAGES_BASE_MISSING',
        hint: `docker pull ${ref}, or build one from Debian: debootstrap --variant=minbase bookworm rootfs && tar -C rootfs -c . | docker import - ${ref} (then --base ${ref}).`,
      })
    return info.id
  }
  const want = new Set(options.only && options.only.length > 0 ? options.only : IMAGE_NAMES)
  // postgres is built FROM the service image of the same version
  if (want.has('postgres')) want.add('service')
  const plans = await imagePlans({root, imagesDir, options, want, baseId})
  const images: BuiltImage[] = []
  for (const plan of plans) images.push(await buildPlan(plan, root, options))
  return {version: options.version, prefix: options.prefix, images}
}
