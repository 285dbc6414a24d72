/**
 * `restore files <id|latest>`: the uploads and Chroma folders of a files / all backup.
 *
 * Per component (uploads → UPLOADS_DIR, chroma → CHROMA_PERSIST_DIRECTORY), with L the live folder:
 *  1. checksums of the archive part and its file list (nothing touched when one is damaged);
 *  2. free space beside L checked against the part's content size;
 *  3. extracted into `L.restore-<id>` (same filesystem, so the swap is a rename) and checked
 *     against the file list: every path, size and sha256, nothing missing, nothing extra;
 *  4. only when every component is checked: maintenance mode on, the Chroma server stopped (when
 *     charge-ops manages it: the sandbox), then `L → L.old-<id>`, `L.restore-<id> → L`, the
 *     Chroma server started again;
 *  5. Chroma's record count per collection (in the restored chroma.sqlite3, and through the server
 *     when it runs) compared with the manifest;
 *  6. the old folders removed, last.
 *
 * A journal (`<stateDir>/restore-files.json`, written atomically before every step) lets a rerun
 * after a kill finish or undo what was interrupted: an unverified extraction is deleted; a verified
 * one whose swap was interrupted is swapped in; a finished swap has its old folder removed. A rerun
 * of the same backup then skips the components already restored.
 */
import {existsSync} from 'node:fs'
import {mkdir, readFile, rename, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import type {Settings} from '../config/settings.js'
import {fsyncDir} from '../core/fs/atomic.js'
import {jsonJournal} from '../core/fs/journal.js'
import {acquireLocalLock} from '../core/fs/lock.js'
import {ChecksFailedError, ConfigError, UnreachableError, UsageError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import type {Progress} from '../output/progress.js'
import {
  findPart,
  partKey,
  resolveBackup,
  type BackupManifest,
  type BackupPart,
  type FileEntry,
} from '../repository/manifest.js'
import type {RepositoryStorage} from '../repository/storage.js'
import type {EncryptionKey} from '../backup/encryption.js'
import {checkPart, checksumError, openPartPlaintext, type PartCheck} from './logical.js'
import {faultPoint} from '../core/faults.js'
import {currentOwner, ownerState, type ProcessOwner} from '../core/proc/pid.js'

export type FilesComponent = 'uploads' | 'chroma'
export const FILES_COMPONENTS: FilesComponent[] = ['uploads', 'chroma']

/** Stops and starts the Chroma server around the swap. */
export interface ChromaControl {
  describe: string
  stop(): Promise<void>
  start(): Promise<void>
  /** the server's URL for the count check after the restart */
  url?: string
  /** the sandbox's server: where a rerun finds it to start it again after a kill */
  sandbox?: {root: string; port: number}
}

export interface RestoreFilesOptions {
  settings: Settings
  storage: RepositoryStorage
  stack: string
  ref: string
  only?: FilesComponent[]
  encryption?: EncryptionKey
  /** switch maintenance mode on during the swap (default true) */
  maintenance?: boolean
  /** how to stop / start the Chroma server (default: the sandbox's, when it manages this folder) */
  chroma?: ChromaControl | null
  logger: Logger
  progress?: (label: string, totalBytes?: number) => Progress
  /** test hook: called after each step (to kill at a precise moment) */
  onStep?: (step: string) => void | Promise<void>
}

export interface ComponentResult {
  component: FilesComponent
  dir: string
  files: number
  bytes: number
  /** already restored by an interrupted run of the same backup */
  resumed: boolean
}

export interface RestoreFilesResult {
  id: string
  components: ComponentResult[]
  chroma?: {
    /** per collection: manifest count, restored chroma.sqlite3 count, server count (when reachable) */
    collections: {name: string; expected: number; restored: number | null; server: number | null; ok: boolean}[]
    server: 'restarted' | 'not managed: restart it' | 'not configured' | 'not running'
    ok: boolean
  }
  recovered: string[]
  warnings: string[]
  durationMs: number
}

interface JournalEntry {
  live: string
  staging: string
  old: string
  phase: 'extracting' | 'verified' | 'swapping' | 'swapped' | 'done'
  hadLive?: boolean
}

interface Journal {
  id: string
  startedAt: string
  components: Partial<Record<FilesComponent, JournalEntry>>
  /** the sandbox's Chroma server this run stopped (written before the stop): a rerun starts it again */
  chromaStopped?: {root: string; port: number; owner: ProcessOwner}
}

const journalFile = (settings: Pick<Settings, 'stateDir'>) => join(settings.stateDir, 'restore-files.json')
const lockFile = (settings: Pick<Settings, 'stateDir'>) => join(settings.stateDir, 'restore-files.lock')

const filesJournal = (settings: Pick<Settings, 'stateDir'>) =>
  jsonJournal<Journal>(journalFile(settings), {
    what: 'the restore files journal',
    hint: 'Check beside the uploads and Chroma folders for `.restore-<id>` / `.old-<id>` siblings (the live folder may be one of them) and whether the sandbox Chroma server runs.',
  })

async function saveJournal(settings: Pick<Settings, 'stateDir'>, journal: Journal): Promise<void> {
  filesJournal(settings).save(journal)
}

async function loadJournal(settings: Pick<Settings, 'stateDir'>): Promise<Journal | undefined> {
  return filesJournal(settings).load()
}

/**
 * Finishes or undoes what an interrupted run left, from the journal. Returns what it did, and the
 * journal's components already restored for `id` (so that a rerun of the same backup skips them).
 */
export async function recoverInterrupted(
  settings: Pick<Settings, 'stateDir'>,
  logger: Logger,
): Promise<{actions: string[]; journal?: Journal}> {
  const journal = await loadJournal(settings)
  if (!journal) return {actions: []}
  const actions: string[] = []
  for (const [component, entry] of Object.entries(journal.components) as [FilesComponent, JournalEntry][]) {
    const {live, staging, old} = entry
    if (entry.phase === 'extracting') {
      if (existsSync(staging)) {
        await rm(staging, {recursive: true, force: true})
        actions.push(`${component}: removed the unverified extraction ${staging}`)
      }
      delete journal.components[component]
    } else if (entry.phase === 'verified' || entry.phase === 'swapping') {
      // verified copy ready; the swap may be half done: finish it
      if (existsSync(staging)) {
        if (existsSync(live) && !existsSync(old)) await rename(live, old)
        if (!existsSync(live)) {
          await rename(staging, live)
          await fsyncDir(dirname(live))
          actions.push(`${component}: finished the interrupted swap (${basename(staging)} → ${basename(live)})`)
        }
      } else if (!existsSync(live) && existsSync(old)) {
        await rename(old, live)
        actions.push(`${component}: put the old folder back (${basename(old)} → ${basename(live)})`)
        delete journal.components[component]
        continue
      }
      entry.phase = 'swapped'
    }
    if (entry.phase === 'swapped') {
      if (existsSync(old)) {
        await rm(old, {recursive: true, force: true})
        actions.push(`${component}: removed the old folder ${old} (the swap had completed)`)
      }
      entry.phase = 'done'
    }
  }
  const stopped = journal.chromaStopped
  if (stopped && ownerState(stopped.owner) !== 'alive') {
    // the run that stopped the sandbox's Chroma server for its swap died before starting it again
    const {ensureChroma} = await import('../sandbox/servers.js')
    await ensureChroma(stopped.root, stopped.port)
    actions.push(`started the Chroma server (port ${stopped.port}) that the interrupted run had stopped`)
    delete journal.chromaStopped
  }
  for (const a of actions) logger.warn(`interrupted restore files ${journal.id}: ${a}`)
  await saveJournal(settings, journal)
  return {actions, journal}
}

/** Compares an extracted tree with the backup's file list (path, size, sha256 when recorded). */
export async function compareTree(dir: string, expected: FileEntry[]): Promise<string[]> {
  const {listFiles} = await import('../backup/files.js')
  const withHash = expected.some((f) => f.sha256)
  const actual = await listFiles(dir, undefined, {hash: withHash})
  const byPath = new Map(actual.map((f) => [f.path, f]))
  const problems: string[] = []
  for (const f of expected) {
    const got = byPath.get(f.path)
    if (!got) problems.push(`${f.path}: missing`)
    else if (got.size !== f.size) problems.push(`${f.path}: ${got.size} bytes, expected ${f.size}`)
    else if (f.sha256 && got.sha256 !== f.sha256) problems.push(`${f.path}: sha256 differs`)
    byPath.delete(f.path)
  }
  for (const extra of byPath.keys()) problems.push(`${extra}: not in the backup's file list`)
  return problems
}

async function readFileList(storage: RepositoryStorage, manifest: BackupManifest, name: string): Promise<FileEntry[]> {
  const text = (await storage.getBytes(partKey(manifest.stack, manifest.id, name))).toString('utf8')
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as FileEntry)
}

/** The sandbox's Chroma server when it serves this folder (`<sandbox>/chroma`, `<sandbox>/run/chroma.pid`). */
export async function sandboxChromaControl(chromaDir: string): Promise<ChromaControl | undefined> {
  const root = dirname(chromaDir)
  if (basename(chromaDir) !== 'chroma' || !existsSync(join(root, 'sandbox.json'))) return undefined
  const {chromaPidFile, readPidFile, stopChroma, ensureChroma} = await import('../sandbox/servers.js')
  if (!readPidFile(chromaPidFile(root))) return undefined
  const state = JSON.parse(await readFile(join(root, 'sandbox.json'), 'utf8')) as {ports: {chroma: number}}
  return {
    describe: `the sandbox's Chroma server (port ${state.ports.chroma})`,
    url: `http://127.0.0.1:${state.ports.chroma}`,
    sandbox: {root, port: state.ports.chroma},
    stop: async () => {
      await stopChroma(root)
    },
    start: async () => {
      await ensureChroma(root, state.ports.chroma)
    },
  }
}

function liveDirOf(settings: Settings, manifest: BackupManifest, component: FilesComponent): string {
  const dir = component === 'uploads' ? settings.uploadsDir : settings.chromaDir
  if (!dir) {
    const name = component === 'uploads' ? 'UPLOADS_DIR' : 'CHROMA_PERSIST_DIRECTORY'
    const was = component === 'uploads' ? manifest.files?.uploadsDir : manifest.files?.chromaDir
    throw new ConfigError(`${name} is not configured: nowhere to restore the ${component} part of ${manifest.id}`, {
      code: 'CONFIG_MISSING',
      hint: `Set ${name} in the backend .env${was ? ` (the backup came from ${was})` : ''}, or restore only the other part with --only.`,
    })
  }
  return dir
}

async function checkSpace(dir: string, needed: number): Promise<void> {
  const {diskUsage} = await import('../core/fs/system.js')
  const free = (await diskUsage(dir)).freeBytes
  if (free < needed * 1.05 + 16 * 1024 * 1024) {
    const {formatBytes} = await import('../core/units/size.js')
    throw new UnreachableError(
      `not enough space beside ${dir}: ${formatBytes(free)} free, the restored copy needs ${formatBytes(needed)} (the old folder is kept until the end) — nothing was changed`,
      {
        code: 'NO_SPACE',
        hint: 'Free space on that filesystem; the restore extracts next to the live folder so that the swap is an atomic rename.',
      },
    )
  }
}

/** One component to restore: its archive part, file list and live folder. */
interface ComponentPlan {
  component: FilesComponent
  part: BackupPart
  list: BackupPart | undefined
  live: string
}

/** What one run shares between its steps, and what `finally` must undo when a step throws. */
interface RestoreRun {
  options: RestoreFilesOptions
  manifest: BackupManifest
  progress: NonNullable<RestoreFilesOptions['progress']>
  step: (name: string) => Promise<void>
  warnings: string[]
  journal?: Journal
  hold?: import('../service/maintenance.js').MaintenanceHold
  chromaStopped?: ChromaControl
}

export async function restoreFiles(options: RestoreFilesOptions): Promise<RestoreFilesResult> {
  const started = Date.now()
  const {settings, storage, stack, logger} = options
  const manifest = await resolveBackup(storage, stack, options.ref, {kind: ['files', 'all']})
  const wanted = wantedComponents(manifest, options.only)
  const release = await acquireLocalLock(lockFile(settings), {what: 'restore files'})
  const run: RestoreRun = {
    options,
    manifest,
    progress: options.progress ?? (() => ({add() {}, bytes: 0, done() {}})),
    step: async (name: string) => {
      await faultPoint(`restore.files.${name.split(':')[0]}`)
      await options.onStep?.(name)
    },
    warnings: [],
  }
  try {
    if (options.maintenance !== false) {
      // left on by a killed restore files (its owner is dead): ours to switch off at the end
      const {takeMaintenance} = await import('../service/maintenance.js')
      run.hold = await takeMaintenance(settings, 'restore files', `restore files ${manifest.id}`, logger, {
        onlyTakeOver: true,
      })
    }
    const {actions: recovered, journal: previous} = await recoverInterrupted(settings, logger)
    const alreadyDone = new Set<FilesComponent>(
      previous?.id === manifest.id
        ? (Object.entries(previous.components) as [FilesComponent, JournalEntry][])
            .filter(([, e]) => e.phase === 'done')
            .map(([c]) => c)
        : [],
    )

    // 1. checksums of every part involved, before anything is touched
    const plan = await checkParts(run, wanted, alreadyDone)

    const journal: Journal = {id: manifest.id, startedAt: new Date().toISOString(), components: {}}
    run.journal = journal
    if (previous?.id === manifest.id) for (const c of alreadyDone) journal.components[c] = previous.components[c]
    const results: ComponentResult[] = []

    // 2–3. extract beside the live folder and check against the file list
    for (const entry of plan) {
      const {component, part, live} = entry
      if (alreadyDone.has(component))
        results.push({component, dir: live, files: part.fileCount ?? 0, bytes: part.contentBytes ?? 0, resumed: true})
      else results.push(await extractComponent(run, journal, entry))
    }

    // 4. the swap: maintenance on, Chroma stopped, renames
    const toSwap = plan.filter((p) => !alreadyDone.has(p.component))
    if (toSwap.length > 0) await swapIn(run, journal, toSwap)

    // 5. Chroma counts
    let chroma: RestoreFilesResult['chroma']
    const chromaPlan = plan.find((p) => p.component === 'chroma')
    if (chromaPlan)
      chroma = await compareChroma(manifest, chromaPlan.live, settings, options.chroma, run.warnings, logger)

    // 6. old folders removed, last
    for (const {component} of toSwap) {
      const entry = journal.components[component]!
      await rm(entry.old, {recursive: true, force: true})
      entry.phase = 'done'
      await saveJournal(settings, journal)
    }
    await rm(journalFile(settings), {force: true})
    return {
      id: manifest.id,
      components: results,
      chroma,
      recovered,
      warnings: run.warnings,
      durationMs: Date.now() - started,
    }
  } finally {
    await restartAndRelease(run)
    await release()
  }
}

function wantedComponents(manifest: BackupManifest, only: FilesComponent[] | undefined): FilesComponent[] {
  const available = FILES_COMPONENTS.filter((c) => findPart(manifest, c))
  const wanted = only?.length ? only : available
  for (const c of wanted)
    if (!available.includes(c))
      throw new UsageError(`backup ${manifest.id} has no ${c} part (it has: ${available.join(', ') || 'none'})`, {
        code: 'BACKUP_WRONG_KIND',
      })
  if (wanted.length === 0)
    throw new UsageError(`backup ${manifest.id} holds no uploads or Chroma part`, {code: 'BACKUP_WRONG_KIND'})
  return wanted
}

/** Step 1: the plan of each wanted component, its parts' checksums checked (skipped for the ones already restored). */
async function checkParts(
  run: RestoreRun,
  wanted: FilesComponent[],
  alreadyDone: Set<FilesComponent>,
): Promise<ComponentPlan[]> {
  const {manifest, options} = run
  const plan: ComponentPlan[] = []
  const checks: PartCheck[] = []
  for (const component of wanted) {
    const part = findPart(manifest, component)!
    const list = part.fileListPart
      ? findPart(manifest, part.fileListPart)
      : findPart(manifest, `${component}.files.json`)
    const live = liveDirOf(options.settings, manifest, component)
    plan.push({component, part, list, live})
    if (alreadyDone.has(component)) continue
    for (const p of [part, list].filter(Boolean) as BackupPart[]) {
      const bar = run.progress(`verify ${p.name}`, p.bytes)
      const check = await checkPart(options.storage, manifest, p, (n) => bar.add(n))
      bar.done(check.ok ? 'checksum ok' : 'checksum MISMATCH')
      checks.push(check)
    }
  }
  if (checks.some((c) => !c.ok)) throw checksumError(manifest, checks)
  return plan
}

/** Steps 2–3 for one component: extracted into `L.restore-<id>` and checked against its file list. */
async function extractComponent(
  run: RestoreRun,
  journal: Journal,
  {component, part, list, live}: ComponentPlan,
): Promise<ComponentResult> {
  const {manifest, options} = run
  const {settings, storage} = options
  const staging = `${live}.restore-${manifest.id}`
  const old = `${live}.old-${manifest.id}`
  if (existsSync(old))
    throw new ConfigError(`${old} exists but no interrupted restore names it`, {
      code: 'RESTORE_LEFTOVER',
      hint: `Look at it, then move it away or delete it, and rerun.`,
    })
  await checkSpace(dirname(live), part.contentBytes ?? part.bytes * 4)
  await faultPoint('restore.files.space-checked')
  journal.components[component] = {live, staging, old, phase: 'extracting', hadLive: existsSync(live)}
  await saveJournal(settings, journal)
  await rm(staging, {recursive: true, force: true})
  await mkdir(staging, {recursive: true, mode: 0o750})
  // a partial or mismatching extraction is useless and may fill the disk: removed now, not left for a rerun
  const discard = async () => {
    await rm(staging, {recursive: true, force: true})
    delete journal.components[component]
    await saveJournal(settings, journal)
  }
  const bar = run.progress(`extract ${part.name}`, part.bytes)
  const plain = await openPartPlaintext(storage, manifest, part, options.encryption, (n) => bar.add(n))
  const {startFedChild} = await import('../backup/child.js')
  // --ignore-zeros: read to EOF, never exit into our pipe's last write (see restore/logical.ts)
  const tar = await startFedChild(
    'tar',
    ['--extract', '--file=-', '--ignore-zeros', '--numeric-owner', '-C', staging],
    plain.stream,
    {
      purpose: `extracting the ${component} part`,
    },
  )
  const settled = await Promise.allSettled([tar.done, tar.fed, plain.done])
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) {
    await discard()
    throw await extractionError(settled, failed, component, part, live)
  }
  bar.done('extracted')
  await run.step(`extracted:${component}`)
  if (list) {
    const problems = await compareTree(staging, await readFileList(storage, manifest, list.name))
    if (problems.length > 0) {
      await discard()
      throw new ChecksFailedError(
        `the extracted ${component} part of ${manifest.id} does not match its file list: ${problems.slice(0, 10).join('; ')}${problems.length > 10 ? ` (+${problems.length - 10} more)` : ''} — the live folder was not touched`,
        {
          code: 'FILES_MISMATCH',
          hint: 'The backup is damaged or was taken while files changed; restore another backup (charge-ops backup list).',
          data: {problems},
        },
      )
    }
  } else {
    run.warnings.push(
      `backup ${manifest.id} has no file list for ${component}: the extraction was not checked file by file`,
    )
  }
  journal.components[component]!.phase = 'verified'
  await saveJournal(settings, journal)
  await run.step(`verified:${component}`)
  return {component, dir: live, files: part.fileCount ?? 0, bytes: part.contentBytes ?? 0, resumed: false}
}

/** A failed extraction's error: NO_SPACE when the disk filled up, else the first failure as it was. */
async function extractionError(
  settled: PromiseSettledResult<unknown>[],
  failed: PromiseRejectedResult,
  component: FilesComponent,
  part: BackupPart,
  live: string,
): Promise<unknown> {
  const reasons = settled
    .map((r) => (r.status === 'rejected' ? String((r.reason as Error)?.message ?? r.reason) : ''))
    .join('\n')
  if (!/No space left on device|ENOSPC|Disk quota exceeded|EDQUOT/.test(reasons)) return failed.reason
  const {formatBytes} = await import('../core/units/size.js')
  return new UnreachableError(
    `the disk beside ${live} filled up while the ${component} part was extracted (the backup holds ${formatBytes(part.contentBytes ?? 0)}); the partial copy was removed and ${live} was not touched`,
    {
      code: 'NO_SPACE',
      hint: `Free space on the filesystem of ${dirname(live)} (something else is writing there too), then rerun.`,
      cause: failed.reason,
    },
  )
}

/** Step 4: maintenance on, the Chroma server stopped, `L → L.old-<id>`, `L.restore-<id> → L`, Chroma started again. */
async function swapIn(run: RestoreRun, journal: Journal, toSwap: ComponentPlan[]): Promise<void> {
  const {options, manifest} = run
  const {settings, logger} = options
  if (options.maintenance !== false && !run.hold?.owned) {
    const {takeMaintenance} = await import('../service/maintenance.js')
    run.hold = await takeMaintenance(settings, 'restore files', `restore files ${manifest.id}`, logger)
    if (run.hold.owned) logger.info('maintenance mode on for the swap')
  }
  if (toSwap.some((p) => p.component === 'chroma')) {
    const chromaControl =
      options.chroma !== undefined ? options.chroma : await sandboxChromaControl(settings.chromaDir!)
    if (chromaControl) {
      logger.info(`stopping ${chromaControl.describe} for the swap`)
      if (chromaControl.sandbox) {
        // recorded before the stop: a kill from here on leaves a journal that says who restarts it
        journal.chromaStopped = {...chromaControl.sandbox, owner: currentOwner('restore files')}
        await saveJournal(settings, journal)
      }
      await chromaControl.stop()
      run.chromaStopped = chromaControl
      await run.step('chroma-stopped:chroma')
    }
  }
  for (const {component, live} of toSwap) {
    const entry = journal.components[component]!
    entry.phase = 'swapping'
    await saveJournal(settings, journal)
    if (existsSync(live)) await rename(live, entry.old)
    await run.step(`moved-old:${component}`)
    await rename(entry.staging, live)
    await fsyncDir(dirname(live))
    entry.phase = 'swapped'
    await saveJournal(settings, journal)
    await run.step(`swapped:${component}`)
  }
  if (run.chromaStopped) {
    logger.info(`starting ${run.chromaStopped.describe}`)
    await run.chromaStopped.start()
    run.chromaStopped = undefined
    delete journal.chromaStopped
    await saveJournal(settings, journal)
  }
}

/** On every exit: the Chroma server this run stopped started again, maintenance mode switched off when this run switched it on. */
async function restartAndRelease(run: RestoreRun): Promise<void> {
  const {settings, logger} = run.options
  const stopped = run.chromaStopped
  if (stopped) {
    const started = await stopped
      .start()
      .then(() => true)
      .catch((error) => logger.warn(`could not start ${stopped.describe} again: ${(error as Error).message}`))
    if (started && run.journal?.chromaStopped && existsSync(journalFile(settings))) {
      delete run.journal.chromaStopped
      await saveJournal(settings, run.journal).catch(() => {})
    }
  }
  if (run.hold?.owned) {
    await run.hold
      .release()
      .catch((error) =>
        logger.warn(
          `could not switch maintenance mode off: ${(error as Error).message}; run charge-ops service maintenance off`,
        ),
      )
    logger.info('maintenance mode off')
  }
}

async function compareChroma(
  manifest: BackupManifest,
  live: string,
  settings: Settings,
  control: ChromaControl | null | undefined,
  warnings: string[],
  logger: Logger,
): Promise<NonNullable<RestoreFilesResult['chroma']>> {
  const {chromaCollectionCounts, CHROMA_SQLITE} = await import('../backup/files.js')
  const restored = (await chromaCollectionCounts(join(live, CHROMA_SQLITE))) ?? {}
  const expected: Record<string, number> = {
    ...((manifest.files?.chroma as {collections?: Record<string, number>} | undefined)?.collections ?? {}),
  }
  const c = manifest.consistency?.chroma
  if (Object.keys(expected).length === 0 && c?.records != null) expected[c.collection] = c.records
  const managed = control === undefined ? await sandboxChromaControl(live) : (control ?? undefined)
  const url = managed?.url ?? settings.chromaUrl
  let serverCounts: Record<string, number> | undefined
  let server: NonNullable<RestoreFilesResult['chroma']>['server'] = url ? 'not running' : 'not configured'
  if (url) {
    try {
      const {collectionCounts} = await import('../chroma/client.js')
      serverCounts = Object.fromEntries(
        (await collectionCounts(url, {timeoutMs: 10_000})).map((x) => [x.name, x.count]),
      )
      server = managed ? 'restarted' : 'not managed: restart it'
    } catch {
      serverCounts = undefined
    }
  }
  if (server === 'not managed: restart it') {
    const message = `the Chroma server at ${url} is not managed by charge-ops and still holds the old files open: restart it now (e.g. systemctl restart charge-analysis-chroma, or docker compose restart chroma), then run charge-ops doctor`
    warnings.push(message)
    logger.warn(message)
    serverCounts = undefined // its counts describe the old files until it restarts
  }
  const collections = Object.entries(expected).map(([name, n]) => {
    const r = restored[name] ?? null
    const s = serverCounts ? (serverCounts[name] ?? null) : null
    return {name, expected: n, restored: r, server: s, ok: r === n && (serverCounts === undefined || s === n)}
  })
  if (Object.keys(expected).length === 0)
    warnings.push(`backup ${manifest.id} records no Chroma collection counts; not compared`)
  return {collections, server, ok: collections.every((x) => x.ok)}
}
