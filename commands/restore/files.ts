import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {encryptFlag, repositoryLocationFlags} from '../../src/cli/flags.js'
import type {RestoreFilesResult} from '../../src/restore/files.js'

export default class RestoreFiles extends BaseCommand<typeof RestoreFiles> {
  static summary = 'Restore the uploads and Chroma folders of a files (or all) backup, swapped in atomically.'
  static description = `Each part is checked (size + sha256) before anything is touched, extracted beside its live folder as <dir>.restore-<id>, and compared file by file (path, size, sha256) with the backup's file list. Only then, with the service in maintenance mode and the Chroma server stopped (when charge-ops manages it: the sandbox), the live folder is renamed to <dir>.old-<id> and the restored one into place; the old folders are removed only after everything succeeded. Chroma's record count per collection is compared with the manifest. A Chroma server charge-ops does not manage must be restarted by you: the command says so.
A rerun after a kill finishes or undoes the interrupted swap (journal in the state dir) and goes on.
Exit codes: 0 restored, 1 checksum / file list / Chroma count mismatch, 2 usage or config (no such part, UPLOADS_DIR unset), 4 another restore files runs, 5 repository unreachable or not enough disk space.`
  static examples = [
    '<%= config.bin %> restore files latest --yes',
    '<%= config.bin %> restore files 20261128T021500Z-all-3f2a --only uploads --yes',
    '<%= config.bin %> restore files latest --only chroma --yes --json',
  ]

  static args = {id: Args.string({description: 'backup id or "latest"', required: true})}
  static flags = {
    only: Flags.string({description: 'restore only this part', options: ['uploads', 'chroma'], multiple: true}),
    'no-maintenance': Flags.boolean({description: 'do not switch the service to maintenance mode during the swap'}),
    ...repositoryLocationFlags,
    encrypt: encryptFlag,
  }

  async run(): Promise<RestoreFilesResult> {
    const {openBackupContext} = await import('../../src/backup/context.js')
    const {restoreFiles} = await import('../../src/restore/files.js')
    const {ChecksFailedError} = await import('../../src/errors.js')
    const {formatBytes} = await import('../../src/core/units/size.js')
    const settings = this.settings({repository: this.flags.repo, stack: this.flags.stack})
    const ctx = await openBackupContext({
      settings,
      logger: this.logger,
      progress: (label, total) => this.progress(label, total),
      encryptKeyFile: this.flags.encrypt,
    })
    const parts = this.flags.only?.length ? this.flags.only.join(' and ') : 'uploads and Chroma'
    await this.confirm(
      `Replace the live ${parts} folders with those of backup ${this.args.id} (the current ones are kept until the restore succeeded)?`,
    )
    const result = await restoreFiles({
      settings,
      storage: ctx.storage,
      stack: ctx.stack,
      ref: this.args.id,
      only: this.flags.only as ('uploads' | 'chroma')[] | undefined,
      encryption: ctx.encryption,
      maintenance: !this.flags['no-maintenance'],
      logger: this.logger,
      progress: ctx.progress,
    })
    for (const c of result.components)
      this.log(
        `${c.component}: ${c.files} files, ${formatBytes(c.bytes)} → ${c.dir}${c.resumed ? ' (restored by the interrupted run)' : ''}`,
      )
    if (result.chroma) {
      for (const x of result.chroma.collections)
        this.log(
          `chroma ${x.name}: manifest ${x.expected}, restored ${x.restored ?? '?'}${x.server !== null ? `, server ${x.server}` : ''} ${x.ok ? 'ok' : 'DIFFERS'}`,
        )
      this.log(`chroma server: ${result.chroma.server}`)
      if (!result.chroma.ok)
        throw new ChecksFailedError(
          `backup ${result.id} restored, but Chroma's record counts differ from the manifest`,
          {
            code: 'CHROMA_COUNTS_DIFFER',
            hint: 'Restart the Chroma server and run charge-ops doctor; re-embed the knowledge base if the counts stay wrong.',
            data: {chroma: result.chroma},
          },
        )
    }
    this.log(`restored files of backup ${result.id} in ${(result.durationMs / 1000).toFixed(1)}s`)
    return result
  }
}
