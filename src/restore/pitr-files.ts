/**
 * Restoring and verifying the file engine's base backups (src/backup/base-files.ts): every file is
 * rebuilt from its blocks, each pulled from the backup of the chain that holds it, with the stored
 * bytes' and the content's sha256 checked; `global/pg_control` is written under a temporary name
 * (restore pitr renames it last), and the backup_label / tablespace_map that pg_backup_stop
 * returned are put back as files — without backup_label recovery would start from the wrong
 * checkpoint.
 */
import {createHash} from 'node:crypto'
import {chown, mkdir, open, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'

import {
  BACKUP_LABEL_PART,
  blockKeySuffix,
  decodeBlock,
  TABLESPACE_MAP_PART,
  type StoredBlock,
} from '../backup/base-blocks.js'
import {readFileList} from '../backup/base-files.js'
import type {EncryptionKey} from '../backup/encryption.js'
import {ChecksFailedError} from '../errors.js'
import {findPart, listBackups, partKey, type BackupManifest} from '../repository/manifest.js'
import type {RepositoryStorage} from '../repository/storage.js'

interface Owner {
  uid: number
  gid: number
}

/** Every backup a file backup references must be complete: else the chain cannot be restored. */
async function chainManifests(
  storage: RepositoryStorage,
  manifest: BackupManifest,
): Promise<Map<string, BackupManifest>> {
  const references = ((manifest.base as {references?: string[]}).references ?? []) as string[]
  const {complete} = await listBackups(storage, manifest.stack, {kind: 'base'})
  const byId = new Map(complete.map((m) => [m.id, m]))
  const missing = references.filter((r) => !byId.has(r))
  if (missing.length > 0) {
    throw new ChecksFailedError(
      `base backup ${manifest.id} references ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} missing or incomplete: the chain cannot be restored`,
      {
        code: 'BASE_CHAIN_BROKEN',
        hint: 'Restore an older complete chain with --backup; `charge-ops backup verify` names every damaged backup.',
      },
    )
  }
  return byId
}

async function pool<T>(tasks: T[], jobs: number, work: (task: T) => Promise<void>): Promise<void> {
  let next = 0
  let failed: unknown
  await Promise.all(
    Array.from({length: Math.max(1, jobs)}, async () => {
      while (failed === undefined && next < tasks.length) {
        const task = tasks[next++]
        await work(task).catch((error: unknown) => {
          failed ??= error
        })
      }
    }),
  )
  if (failed !== undefined) throw failed
}

export interface FileRestoreOptions {
  storage: RepositoryStorage
  manifest: BackupManifest
  dataDir: string
  /** where global/pg_control goes until everything else is durable */
  controlPath: string
  owner?: Owner
  encryption?: EncryptionKey
  jobs?: number
  progress?: (label: string, total?: number) => {add(n: number): void; done(note?: string): void}
}

export async function restoreFileBackup(
  options: FileRestoreOptions,
): Promise<{files: number; bytes: number; backups: string[]}> {
  const {storage, manifest, dataDir, owner} = options
  const stack = manifest.stack
  await chainManifests(storage, manifest)
  const list = await readFileList(storage, manifest)
  const own = async (path: string) => {
    if (owner) await chown(path, owner.uid, owner.gid)
  }
  for (const dir of list.directories) {
    await mkdir(join(dataDir, dir.path), {recursive: true, mode: 0o700})
    await own(join(dataDir, dir.path))
  }
  const target = (path: string) => (path === 'global/pg_control' ? options.controlPath : join(dataDir, path))
  const tasks: {path: string; index: number; block: StoredBlock}[] = []
  for (const file of list.files) {
    const path = target(file.path)
    await mkdir(dirname(path), {recursive: true, mode: 0o700})
    const handle = await open(path, 'w', 0o600)
    await handle.truncate(file.size)
    await handle.close()
    await own(path)
    file.blocks.forEach((block, index) => tasks.push({path: file.path, index, block}))
  }
  const total = tasks.reduce((s, t) => s + t.block.size, 0)
  const progress = options.progress?.(`restore ${manifest.id}`, total)
  await pool(tasks, options.jobs ?? 2, async ({path, index, block}) => {
    const what = `${path} block ${index} (held by ${block.ref})`
    const body = await storage
      .getBytes(partKey(stack, block.ref, blockKeySuffix(path, index, block.c)))
      .catch((error: Error) => {
        throw new ChecksFailedError(`${what}: ${error.message}`, {code: 'BASE_BLOCK_MISSING'})
      })
    const data = await decodeBlock(body, block, what, options.encryption)
    const handle = await open(target(path), 'r+')
    try {
      await handle.write(data, 0, data.length, index * list.blockSize)
    } finally {
      await handle.close()
    }
    progress?.add(data.length)
  })
  progress?.done()
  for (const name of [BACKUP_LABEL_PART, TABLESPACE_MAP_PART]) {
    const part = findPart(manifest, name)
    if (!part) continue
    const text = await storage.getBytes(partKey(stack, manifest.id, name))
    if (createHash('sha256').update(text).digest('hex') !== part.sha256)
      throw new ChecksFailedError(`backup ${manifest.id}: ${name} does not match its manifest checksum`, {
        code: 'PITR_BASE_CORRUPT',
      })
    await writeFile(join(dataDir, name), text, {mode: 0o600})
    await own(join(dataDir, name))
  }
  return {files: list.files.length, bytes: total, backups: [...new Set(tasks.map((t) => t.block.ref))].sort()}
}

export interface ChainCheck {
  backups: string[]
  blocks: number
  bytes: number
  bad: {what: string; error: string}[]
}

/** `backup verify` of a file backup: every block it needs, in whichever backup holds it, read and hashed. */
export async function verifyFileChain(
  storage: RepositoryStorage,
  manifest: BackupManifest,
  options: {jobs?: number; onProgress?: (n: number) => void} = {},
): Promise<ChainCheck> {
  const bad: ChainCheck['bad'] = []
  try {
    await chainManifests(storage, manifest)
  } catch (error) {
    bad.push({what: 'chain', error: (error as Error).message})
  }
  let list
  try {
    list = await readFileList(storage, manifest)
  } catch (error) {
    return {backups: [], blocks: 0, bytes: 0, bad: [...bad, {what: 'file list', error: (error as Error).message}]}
  }
  const tasks = list.files.flatMap((f) => f.blocks.map((block, index) => ({path: f.path, index, block})))
  let bytes = 0
  await pool(tasks, options.jobs ?? 4, async ({path, index, block}) => {
    const what = `${path} block ${index} in ${block.ref}`
    try {
      const body = await storage.getBytes(partKey(manifest.stack, block.ref, blockKeySuffix(path, index, block.c)))
      const digest = createHash('sha256').update(body).digest('hex')
      if (body.length !== block.stored || digest !== block.storedSha256)
        bad.push({
          what,
          error: `sha256 ${digest.slice(0, 12)}… (${body.length} bytes) ≠ manifest ${block.storedSha256.slice(0, 12)}… (${block.stored} bytes)`,
        })
      bytes += body.length
      options.onProgress?.(body.length)
    } catch (error) {
      bad.push({what, error: (error as Error).message})
    }
  })
  for (const name of [BACKUP_LABEL_PART, TABLESPACE_MAP_PART])
    if (findPart(manifest, name) === undefined && name === BACKUP_LABEL_PART)
      bad.push({what: name, error: 'missing from the manifest'})
  return {backups: [...new Set(tasks.map((t) => t.block.ref))].sort(), blocks: tasks.length, bytes, bad}
}
