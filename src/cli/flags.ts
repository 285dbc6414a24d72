/**
 * The flags several commands share, each defined once (name, description, env variable), so that
 * `--repo` means the same thing and reads the same in every `--help`. Lives in src/cli because
 * lint keeps oclif out of src/core and the domains. `--json` (oclif's enableJsonFlag) and the
 * global --config / --env-file / --quiet / --verbose / --yes are BaseCommand's baseFlags.
 */
import {Flags} from '@oclif/core'

export const repoFlag = Flags.string({
  description: 'backup repository: a directory or s3://BUCKET/PREFIX (default: backup.repository)',
  env: 'CHARGE_OPS_REPO',
})

export const stackFlag = Flags.string({
  description: "stack name: the repository folder (default: charge-ops.yaml's stack)",
})

export const awsEnvFileFlag = Flags.string({
  description:
    'a 0600 file with AWS_* variables for an S3 repository (named by path, e.g. in restore_command; never on a command line)',
})

/** The repository location trio of the WAL, base-backup and recovery commands. */
export const repositoryLocationFlags = {repo: repoFlag, stack: stackFlag, 'aws-env-file': awsEnvFileFlag}

export const encryptFlag = Flags.string({
  description:
    'encrypt / decrypt parts with this key file (32 random bytes or 64 hex chars, mode 0600); default backup.encryption.keyFile',
  env: 'CHARGE_OPS_ENCRYPT_KEY_FILE',
})

/** `--database-url`: which server, and what the role needs, differ by command: `purpose` says it. */
export const databaseUrlFlag = (purpose: string) => Flags.string({description: `${purpose} (default: DATABASE_URL)`})

export const metricsFileFlag = Flags.string({
  description: 'Prometheus textfile to update (node_exporter textfile collector)',
  env: 'CHARGE_OPS_METRICS_FILE',
})

export const pingUrlFlag = Flags.string({
  description: 'healthchecks-style URL pinged on start (/start), success and failure (/fail)',
  env: 'CHARGE_OPS_PING_URL',
})

/**
 * The recovery target of `restore pitr` and `recover`: exactly one of them. The check is
 * src/restore/pitr-target.ts (exit 2, PITR_TARGET), kept there so that a missing target names all four.
 */
export const pitrTargetFlags = {
  'target-time': Flags.string({
    description: 'recover up to this time (with a zone, e.g. 2026-11-28T14:03:00+08:00); inclusive',
  }),
  'target-lsn': Flags.string({description: 'recover up to this WAL position (e.g. 0/5000060); inclusive'}),
  'target-name': Flags.string({description: 'recover up to this restore point (pg_create_restore_point)'}),
  latest: Flags.boolean({description: 'recover to the end of the archived WAL'}),
}
