import {Flags} from '@oclif/core'

import {BaseCommand} from '../src/cli/base-command.js'
import type {RecoverState} from '../src/restore/recover.js'
import {pitrTargetFlags, repositoryLocationFlags} from '../src/cli/flags.js'

export default class Recover extends BaseCommand<typeof Recover> {
  static summary = "The guide's quick-recovery runbook: maintenance on, restore, replay WAL, repoint, verify."
  static description = `Five resumable steps, each shown as it runs:
  1 maintenance mode on (the service stops accepting writes)
  2 restore the newest suitable base backup into a NEW data directory
  3 replay archived WAL to the target and promote (the server runs on --port)
  4 repoint DATABASE_URL in the backend .env to the recovered server (the old .env is kept beside it),
    or with --pgbouncer-ini the database's entry in pgbouncer.ini, then reload PgBouncer
  5 verify: migration version matches the old database, --health-url answers 2xx, row counts
A failure leaves the old database serving: maintenance is switched off again and, after step 4, the old .env (or pgbouncer.ini, reloaded) is put back (exit 6). Rerun the same command to resume; finished steps are skipped (state in <stateDir>/recover.json).
On a compose deployment (--target compose, the default when charge-ops.yaml says so) the recovered cluster replaces the one in the postgres volume and nothing is repointed:
  1 maintenance on  2 stop nginx, worker, backend, PostgreSQL  3 restore pitr in the volume (a container of the postgres image; the old cluster kept aside in it)
  4 start PostgreSQL, wait until it promoted  5 docker compose up -d --wait  6 verify, maintenance off
A failure puts the old cluster back and starts the stack on it (exit 6).`
  static examples = [
    '<%= config.bin %> recover --latest --data-dir /var/lib/postgresql/15/recovered --port 5433 --yes',
    '<%= config.bin %> recover --target-time "2026-11-28T14:03:00+08:00" --data-dir /srv/pg-recovered --port 5433 --health-url http://127.0.0.1:8000/health --yes',
    'cd /srv/charge && <%= config.bin %> recover --target compose --target-time "2026-11-28T14:03:00+08:00" --yes',
    'CHARGE_OPS_PGBOUNCER_ADMIN_URL=postgresql://pgbouncer_admin:…@127.0.0.1:6432/pgbouncer <%= config.bin %> recover --latest --data-dir /srv/pg-recovered --port 5433 --pgbouncer-ini /etc/pgbouncer/pgbouncer.ini --yes',
  ]
  static flags = {
    ...pitrTargetFlags,
    target: Flags.string({
      description: "deployment target (default: charge-ops.yaml's target)",
      options: ['local', 'compose'],
    }),
    'data-dir': Flags.string({
      description: 'local: the new data directory (empty or absent; owned by the postgres user); required there',
    }),
    port: Flags.integer({description: 'local: port of the recovered server; required there'}),
    host: Flags.string({description: 'host written into the new DATABASE_URL', default: '127.0.0.1'}),
    'health-url': Flags.string({description: "the service's /health to check in step 5 (after you restarted it)"}),
    'no-maintenance': Flags.boolean({description: 'do not switch maintenance mode (no bundled service on this host)'}),
    'wal-prefetch': Flags.integer({
      description:
        'restore_command fetches this many WAL segments ahead into a spool in the data directory (0: none; docs/pitr.md)',
      min: 0,
      max: 256,
      default: 8,
    }),
    ...repositoryLocationFlags,
    'pgbouncer-ini': Flags.string({
      description:
        "step 4 repoints this pgbouncer.ini's entry for the database (DATABASE_URL names PgBouncer and stays)",
      env: 'CHARGE_OPS_PGBOUNCER_INI',
    }),
    'pgbouncer-admin-url': Flags.string({
      description: 'PgBouncer admin console for RELOAD (else SIGHUP to its pidfile); prefer the variable',
      env: 'CHARGE_OPS_PGBOUNCER_ADMIN_URL',
      dependsOn: ['pgbouncer-ini'],
    }),
  }

  async run(): Promise<RecoverState> {
    const {parseTarget, describeTarget} = await import('../src/restore/pitr-target.js')
    const target = parseTarget(this.flags)
    const {openWalRepository} = await import('../src/wal/context.js')
    const {planRecover, withRecoverLock} = await import('../src/restore/recover.js')
    const {resolve, join} = await import('node:path')
    const {existsSync} = await import('node:fs')
    const settings = this.settings(this.flags.repo ? {repository: this.flags.repo} : {})
    const deployment = this.flags.target ?? (settings.target === 'compose' ? 'compose' : 'local')
    const {UsageError} = await import('../src/errors.js')
    if (deployment === 'compose') {
      const local = (['data-dir', 'port', 'host', 'pgbouncer-ini', 'no-maintenance', 'repo'] as const).filter(
        (f) =>
          this.flags[f] !== undefined && this.flags[f] !== false && !(f === 'host' && this.flags.host === '127.0.0.1'),
      )
      if (local.length > 0)
        throw new UsageError(
          `--${local.join(', --')}: not for a compose deployment (the recovered cluster replaces the one in the postgres volume; the repository is charge-ops.yaml's)`,
          {hint: 'Leave them out, or pass --target local to recover into a new data directory on this host.'},
        )
      return this.recoverCompose(settings, target)
    }
    for (const f of ['data-dir', 'port'] as const)
      if (this.flags[f] === undefined)
        throw new UsageError(`--${f} is required (local target)`, {
          hint: 'e.g. --data-dir /var/lib/postgresql/15/recovered --port 5433; on a compose deployment pass --target compose.',
        })
    if (this.flags['pgbouncer-admin-url']) {
      const [{registerSecret}, {passwordOf}] = await Promise.all([
        import('../src/output/redact.js'),
        import('../src/config/settings.js'),
      ])
      registerSecret(passwordOf(this.flags['pgbouncer-admin-url']))
    }
    const {storage, stack, repository} = await openWalRepository(this.flags, () => settings)
    const migrationsDir = existsSync(join(settings.baseDir, 'service', 'migrations'))
      ? join(settings.baseDir, 'service', 'migrations')
      : undefined
    await this.confirm(
      `Recover stack ${stack} to ${describeTarget(target)} into ${this.flags['data-dir']} (port ${this.flags.port}) and repoint ${this.flags['pgbouncer-ini'] ?? settings.envFilePath}?`,
    )
    return withRecoverLock(settings, async () => {
      const {steps, state, rollback} = await planRecover({
        settings,
        storage,
        stack,
        repository: repository.startsWith('s3://') ? repository : resolve(repository),
        awsEnvFile: this.flags['aws-env-file'] ? resolve(this.flags['aws-env-file']) : undefined,
        target,
        dataDir: this.flags['data-dir']!,
        port: this.flags.port!,
        host: this.flags.host,
        healthUrl: this.flags['health-url'],
        migrationsDir,
        logger:
          this.jsonEnabled() || !this.interactive
            ? this.logger
            : (await import('../src/output/logger.js')).silentLogger,
        skipMaintenance: this.flags['no-maintenance'],
        walPrefetch: this.flags['wal-prefetch'],
        pgbouncer: this.flags['pgbouncer-ini']
          ? {ini: resolve(this.flags['pgbouncer-ini']), adminUrl: this.flags['pgbouncer-admin-url']}
          : undefined,
      })
      await this.runRecoverSteps(steps, rollback)
      this.log(
        `recovered to ${state.target}: DATABASE_URL now points at port ${state.port}; restart the service to use it`,
      )
      return state
    })
  }

  private async recoverCompose(
    settings: import('../src/config/settings.js').Settings,
    target: import('../src/restore/pitr-target.js').RecoveryTarget,
  ): Promise<RecoverState> {
    const {describeTarget} = await import('../src/restore/pitr-target.js')
    const {planComposeRecover} = await import('../src/restore/recover-compose.js')
    await this.confirm(
      `Recover the compose stack ${settings.stack} to ${describeTarget(target)}? Its services stop; the recovered cluster replaces the one in the postgres volume (the old one is kept aside in it).`,
    )
    const {withRecoverLock} = await import('../src/restore/recover.js')
    return withRecoverLock(settings, async () => {
      const {steps, state, rollback} = await planComposeRecover({
        settings,
        target,
        healthUrl: this.flags['health-url'],
        logger: this.logger,
      })
      await this.runRecoverSteps(steps, rollback)
      this.log(
        `recovered the stack to ${state.target}; once the data is checked, remove the old cluster: ${state.removeOldCluster}`,
      )
      return state
    })
  }

  private async runRecoverSteps(
    steps: import('../src/restore/recover.js').RecoverStep[],
    rollback: (error: unknown) => Promise<Error>,
  ): Promise<void> {
    const {runSteps} = await import('../src/core/steps.js')
    try {
      await runSteps(
        steps.map((step) => ({title: step.title, done: () => step.done(), run: (note) => step.run(note)})),
        {tty: this.interactive, logger: this.logger, quiet: this.jsonEnabled() || this.flags.quiet},
      )
    } catch (error) {
      throw await rollback(error)
    }
  }
}
