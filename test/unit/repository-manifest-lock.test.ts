import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {LocalStorage} from '../../src/repository/local-storage.js'
import {acquireLock, lockKey, staleReason} from '../../src/repository/lock.js'
import {
  backupIdTime,
  listBackups,
  newBackupId,
  partKey,
  readManifest,
  recordVerification,
  resolveBackup,
  writeManifest,
} from '../../src/repository/manifest.js'

const dirs: string[] = []
const repo = () => {
  const dir = mkdtempSync(join(tmpdir(), 'co-repo-'))
  dirs.push(dir)
  return new LocalStorage(dir)
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, {recursive: true, force: true})
})

const sha = 'a'.repeat(64)
const manifest = (id: string, kind: 'db' | 'files' = 'db') => ({
  formatVersion: 1 as const,
  id,
  kind,
  stack: 's1',
  startedAt: '2026-01-01T00:00:00Z',
  finishedAt: '2026-01-01T00:01:00Z',
  parts: [{name: 'db.dump.zst', bytes: 3, sha256: sha, compression: 'zstd' as const}],
})

describe('backup ids', () => {
  it('are sortable and carry their time', () => {
    const a = newBackupId('db', new Date('2026-11-28T02:15:00.123Z'))
    expect(a).toMatch(/^20261128T021500Z-db-[0-9a-f]{4}$/)
    expect(backupIdTime(a)?.toISOString()).toBe('2026-11-28T02:15:00.000Z')
    expect(newBackupId('db', new Date('2026-11-28T02:15:01Z')) > a).toBe(true)
  })
})

describe('manifests', () => {
  it('lists only complete backups, newest first, and resolves latest by kind', async () => {
    const s = repo()
    const older = newBackupId('db', new Date('2026-01-01T00:00:00Z'))
    const newer = newBackupId('files', new Date('2026-01-02T00:00:00Z'))
    const partial = newBackupId('db', new Date('2026-01-03T00:00:00Z'))
    await s.put(partKey('s1', older, 'db.dump.zst'), 'abc')
    await writeManifest(s, 's1', manifest(older))
    await writeManifest(s, 's1', manifest(newer, 'files'))
    await s.put(partKey('s1', partial, 'db.dump.zst'), 'abc')
    const listing = await listBackups(s, 's1', {includeIncomplete: true})
    expect(listing.complete.map((m) => m.id)).toEqual([newer, older])
    expect(listing.incomplete.map((m) => m.id)).toEqual([partial])
    expect((await resolveBackup(s, 's1', 'latest')).id).toBe(newer)
    expect((await resolveBackup(s, 's1', 'latest', {kind: 'db'})).id).toBe(older)
    await expect(resolveBackup(s, 's1', partial)).rejects.toMatchObject({exitCode: 2})
  })

  it('never overwrites a manifest, but records verification atomically', async () => {
    const s = repo()
    const id = newBackupId('db')
    await writeManifest(s, 's1', manifest(id))
    await expect(writeManifest(s, 's1', manifest(id))).rejects.toMatchObject({code: 'BACKUP_EXISTS'})
    await recordVerification(s, 's1', id, {verifiedAt: '2026-01-01T00:00:00Z', ok: true, checksumsOk: true})
    expect((await readManifest(s, 's1', id)).verification?.ok).toBe(true)
  })

  it('rejects ids that could escape the repository', () => {
    expect(() => partKey('s1', '../../etc', 'x')).toThrow(/not a backup id/)
  })
})

describe('lock', () => {
  it('refuses a second holder with exit 4 naming the holder, and frees on release', async () => {
    const s = repo()
    const release = await acquireLock(s, 's1', {command: 'backup db'})
    const err = await acquireLock(s, 's1', {command: 'backup files'}).catch((e) => e)
    expect(err.exitCode).toBe(4)
    expect(err.message).toContain('backup db')
    expect(err.message).toContain(`pid ${process.pid}`)
    await release()
    expect(await s.exists(lockKey('s1'))).toBe(false)
    const again = await acquireLock(s, 's1', {command: 'backup files'})
    await again()
  })

  it('takes over a lock whose pid is dead on this host', async () => {
    const s = repo()
    await acquireLock(s, 's1', {command: 'backup db', pid: 2 ** 22 + 12345, settleMs: 0}) // never released
    const release = await acquireLock(s, 's1', {command: 'backup files', settleMs: 10})
    const info = JSON.parse((await s.getBytes(lockKey('s1'))).toString())
    expect(info.command).toBe('backup files')
    await release()
  })

  it('stale rule: other host counts only by heartbeat age', () => {
    const info = {
      token: 't',
      pid: 1,
      host: 'other',
      startedAt: '2026-01-01T00:00:00Z',
      heartbeatAt: '2026-01-01T00:00:00Z',
      command: 'x',
      ttlMs: 60_000,
    }
    expect(staleReason(info, {host: 'me', now: new Date('2026-01-01T00:00:30Z')})).toBeUndefined()
    expect(staleReason(info, {host: 'me', now: new Date('2026-01-01T00:02:00Z')})).toMatch(/heartbeat/)
    expect(
      staleReason({...info, host: 'me'}, {host: 'me', now: new Date('2026-01-01T00:00:30Z'), isAlive: () => false}),
    ).toMatch(/no longer running/)
  })
})
