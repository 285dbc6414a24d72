import {Args} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {repositoryLocationFlags} from '../../src/cli/flags.js'
import type {BackupManifest} from '../../src/repository/manifest.js'

export default class BackupShow extends BaseCommand<typeof BackupShow> {
  static summary = 'Show one backup: its manifest (parts, sizes, checksums, row counts, capture times, verification).'
  static examples = [
    '<%= config.bin %> backup show latest',
    '<%= config.bin %> backup show 20261128T021500Z-db-3f2a --json',
  ]
  static args = {id: Args.string({description: 'backup id or "latest"', default: 'latest'})}
  static flags = {
    ...repositoryLocationFlags,
  }

  async run(): Promise<BackupManifest> {
    const {openConfiguredRepository} = await import('../../src/repository/open.js')
    const {resolveBackup} = await import('../../src/repository/manifest.js')
    const {summarize, formatAge} = await import('../../src/backup/describe.js')
    const {formatBytes} = await import('../../src/core/units/size.js')
    const {renderTable} = await import('../../src/output/table.js')
    const settings = this.settings({repository: this.flags.repo, stack: this.flags.stack})
    const storage = await openConfiguredRepository(settings)
    const m = await resolveBackup(storage, settings.stack, this.args.id)
    const s = summarize(m, new Date())
    const lines = [
      `id:            ${m.id}`,
      `kind:          ${m.kind}`,
      `started:       ${m.startedAt} (${formatAge(s.ageSeconds)} ago), took ${((m.durationMs ?? 0) / 1000).toFixed(1)}s`,
      `size:          ${formatBytes(s.bytes)}${m.encryption ? ` (encrypted, key ${m.encryption.keyId})` : ''}`,
      `service:       ${m.serviceVersion ?? '-'}   migration head: ${m.migrationHead ?? '-'}   PostgreSQL: ${m.postgresVersion ?? '-'}`,
      `verified:      ${m.verification ? `${m.verification.ok ? 'ok' : 'FAILED'} at ${m.verification.verifiedAt}${m.verification.restoreDrill ? `, restore drill ${(m.verification.restoreDrill.durationMs / 1000).toFixed(1)}s` : ''}` : 'never'}`,
    ]
    if (m.db)
      lines.push(
        `db snapshot:   ${m.db.snapshotAt} LSN ${m.db.lsn ?? '?'}, ${Object.keys(m.db.rowCounts).length} tables, ${Object.values(m.db.rowCounts).reduce((a, b) => a + b, 0)} rows`,
      )
    if (m.files?.uploads)
      lines.push(
        `uploads:       ${m.files.uploads.fileCount} files, ${formatBytes(m.files.uploads.bytes)}, captured ${m.files.uploads.capturedAt}`,
      )
    if (m.files?.chroma)
      lines.push(
        `chroma:        ${m.files.chroma.fileCount} files, ${formatBytes(m.files.chroma.bytes)}, captured ${m.files.chroma.capturedAt}`,
      )
    if (m.consistency)
      lines.push(
        `consistency:   ${m.consistency.ok ? 'ok' : 'PROBLEMS'}, skew ${((m.consistency.skewMs ?? 0) / 1000).toFixed(1)}s, missing uploads ${m.consistency.missingUploads.length}, orphan files ${m.consistency.orphanUploads.length}${m.consistency.chroma ? `, chroma ${m.consistency.chroma.records}/${m.consistency.chroma.expected}` : ''}`,
      )
    this.log(lines.join('\n'))
    this.log('')
    this.log(
      renderTable(
        ['PART', 'SIZE', 'COMPRESSION', 'SHA256'],
        m.parts.map((p) => [p.name, formatBytes(p.bytes), p.compression, p.sha256]),
      ),
    )
    return m
  }
}
