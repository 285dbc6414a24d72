/**
 * `backup prune` applies retention to base backups and then to archived WAL: every segment the
 * oldest kept base backup needs stays, older segments go, timeline history files always stay.
 * Real local repository; manifests written by the real manifest writer.
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'

import {openBackupContext} from '../../src/backup/context.js'
import {pruneBackups} from '../../src/backup/prune.js'
import {loadSettings} from '../../src/config/settings.js'
import {silentLogger} from '../../src/output/logger.js'
import {LocalStorage} from '../../src/repository/local-storage.js'
import {listBackups, newBackupId, partKey, writeManifest} from '../../src/repository/manifest.js'
import {listArchive} from '../../src/wal/archive.js'

const STACK = 'prune-wal'
const walKey = (name: string) => `${STACK}/wal/00000001/${name}.zst`
const seg = (n: number) => `0000000100000000${n.toString(16).toUpperCase().padStart(8, '0')}`

async function writeBase(storage: LocalStorage, at: Date, startSegment: number) {
  const id = newBackupId('base', at)
  const part = await storage.put(partKey(STACK, id, 'base.tar.zst'), `base starting at ${startSegment}`)
  await writeManifest(storage, STACK, {
    formatVersion: 1,
    id,
    kind: 'base',
    stack: STACK,
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
    parts: [{name: 'base.tar.zst', bytes: part.bytes, sha256: part.sha256, compression: 'zstd'}],
    base: {
      startLsn: `0/${(startSegment * 0x1000000).toString(16).toUpperCase()}`,
      stopLsn: `0/${(startSegment * 0x1000000 + 0x200).toString(16).toUpperCase()}`,
      timeline: 1,
    },
  } as Parameters<typeof writeManifest>[2])
  return id
}

describe('backup prune and archived WAL', () => {
  it('keeps the WAL the oldest kept base backup needs and deletes older segments', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'charge-ops-prune-wal-'))
    const storage = new LocalStorage(join(dir, 'repo'))
    const now = new Date('2026-11-28T12:00:00Z')
    const day = 24 * 3600 * 1000
    const oldBase = await writeBase(storage, new Date(now.getTime() - 10 * day), 3)
    const newBase = await writeBase(storage, new Date(now.getTime() - 1 * day), 8)
    for (let n = 1; n <= 10; n++) await storage.put(walKey(seg(n)), `segment ${n}`)
    await storage.put(`${STACK}/wal/00000002/00000002.history.zst`, 'history')

    const settings = loadSettings({cwd: dir, env: {CHARGE_OPS_REPO: join(dir, 'repo')}})
    const ctx = await openBackupContext({settings: {...settings, stack: STACK}, logger: silentLogger, storage})
    const policy = {keepLast: 1, keepDays: 0, daily: 0, weekly: 0, monthly: 0}

    const dry = await pruneBackups({...ctx, now: () => now}, {dryRun: true, policy})
    expect(dry.deleted.map((d) => d.id)).toEqual([oldBase])
    expect(dry.wal).toMatchObject({keepFrom: seg(8), deleted: 7})
    expect((await listArchive(storage, STACK)).length).toBe(11) // dry run deleted nothing

    const result = await pruneBackups({...ctx, now: () => now}, {policy})
    expect(result.wal.deleted).toBe(7)
    const left = (await listArchive(storage, STACK)).map((f) => f.name).sort()
    expect(left).toEqual(['00000002.history', seg(8), seg(9), seg(10)].sort())
    expect((await listBackups(storage, STACK)).complete.map((m) => m.id)).toEqual([newBase])
  })
})
