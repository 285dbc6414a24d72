import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {encryptFlag, repositoryLocationFlags} from '../../src/cli/flags.js'
import type {VerifyResult} from '../../src/restore/verify.js'

export default class BackupVerify extends BaseCommand<typeof BackupVerify> {
  static summary = 'Check every part of a backup against its manifest; optionally restore it into a scratch database.'
  static description =
    'Reads each part and compares its size and sha256 with the manifest: exit 1 on any mismatch, naming the part. With --restore-drill the database dump is restored into a scratch database (created and dropped on the DATABASE_URL server, or --drill-url), the per-table row counts are compared with the manifest, and the measured restore time is recorded in the manifest (and in --metrics-file).'
  static examples = [
    '<%= config.bin %> backup verify latest',
    '<%= config.bin %> backup verify 20261128T021500Z-db-3f2a --restore-drill --json',
  ]
  static args = {id: Args.string({description: 'backup id or "latest"', default: 'latest'})}
  static flags = {
    ...repositoryLocationFlags,
    encrypt: encryptFlag,
    'restore-drill': Flags.boolean({description: 'restore into a scratch database, compare row counts, drop it'}),
    'drill-url': Flags.string({
      description:
        'a connection that may create databases, for the scratch database (default: CHARGE_OPS_ADMIN_URL, else DATABASE_URL)',
      env: 'CHARGE_OPS_DRILL_URL',
    }),
    jobs: Flags.integer({description: 'pg_restore workers for the drill', min: 1, default: 1}),
    'metrics-file': Flags.string({
      description: 'Prometheus textfile to update with the restore-drill time',
      env: 'CHARGE_OPS_METRICS_FILE',
    }),
  }

  async run(): Promise<VerifyResult> {
    const {verifyBackup, verificationError} = await import('../../src/restore/verify.js')
    const ctx = await this.backupContext({
      repo: this.flags.repo,
      stack: this.flags.stack,
      encrypt: this.flags.encrypt,
      metricsFile: this.flags['metrics-file'],
    })
    const result = await verifyBackup(ctx, this.args.id, {
      restoreDrill: this.flags['restore-drill'],
      drillUrl: this.flags['drill-url'],
      jobs: this.flags.jobs,
    })
    for (const part of result.parts) this.log(`${part.ok ? 'ok      ' : 'MISMATCH'}  ${part.part}`)
    if (result.chain)
      this.log(
        `chain: ${result.chain.blocks} block(s) in ${result.chain.backups.join(', ')}: ${result.chain.bad.length === 0 ? 'ok' : `${result.chain.bad.length} bad`}`,
      )
    if (result.restoreDrill)
      this.log(
        `restore drill: ${(result.restoreDrill.durationMs / 1000).toFixed(1)}s, ${result.restoreDrill.tables} tables, row counts ${result.restoreDrill.rowCountsMatch ? 'match' : 'DIFFER'}`,
      )
    if (!result.ok) throw verificationError(result)
    this.log(`backup ${result.id} verified`)
    return result
  }
}
