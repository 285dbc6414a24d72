import {describe, expect, it} from 'vitest'

import {walgEnv, walgPlans} from '../../src/backup/walg.js'

describe('wal-g plans', () => {
  const libpq = {
    PGHOST: 'db',
    PGPORT: '5432',
    PGUSER: 'charge',
    PGPASSWORD: 's3cret',
    PGDATABASE: 'charge_analysis',
    PGCONNECT_TIMEOUT: '10',
  }

  it('derives WALG_* / AWS_* for an S3 repository; secrets only in env', () => {
    const env = walgEnv({
      repository: 's3://backups/charge-ops/',
      stack: 'prod',
      s3: {endpoint: 'http://127.0.0.1:9000', region: 'cn-north-1', serverSideEncryption: 'aws:kms', kmsKeyId: 'k1'},
      libpq,
      dataDir: '/var/lib/postgresql/15/main',
      aws: {AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 'shh', HOME: '/root'},
    })
    expect(env).toEqual({
      WALG_S3_PREFIX: 's3://backups/charge-ops/prod/wal-g',
      AWS_ENDPOINT: 'http://127.0.0.1:9000',
      AWS_REGION: 'cn-north-1',
      AWS_S3_FORCE_PATH_STYLE: 'true',
      WALG_S3_SSE: 'aws:kms',
      WALG_S3_SSE_KMS_ID: 'k1',
      AWS_ACCESS_KEY_ID: 'AKIA',
      AWS_SECRET_ACCESS_KEY: 'shh',
      WALG_COMPRESSION_METHOD: 'zstd',
      PGDATA: '/var/lib/postgresql/15/main',
      ...libpq,
    })
  })

  it('uses WALG_FILE_PREFIX for a local repository', () => {
    expect(walgEnv({repository: '/var/backups/charge-ops', stack: 'prod'})).toEqual({
      WALG_FILE_PREFIX: '/var/backups/charge-ops/prod/wal-g',
      WALG_COMPRESSION_METHOD: 'zstd',
    })
  })

  it('builds the exact commands, never a secret in args', () => {
    const env = walgEnv({repository: '/r', stack: 's', libpq})
    const plans = [
      walgPlans.backupPush(env, '/data'),
      walgPlans.backupFetch(env, '/restore'),
      walgPlans.backupFetch(env, '/restore', 'base_000000010000000000000004'),
      walgPlans.walPush(env, 'pg_wal/000000010000000000000004'),
      walgPlans.walFetch(env, '000000010000000000000004', 'pg_wal/RECOVERYXLOG'),
      walgPlans.backupList(env),
      walgPlans.deleteRetain(env, 7),
    ]
    expect(plans.map((p) => [p.command, ...p.args].join(' '))).toEqual([
      'wal-g backup-push /data',
      'wal-g backup-fetch /restore LATEST',
      'wal-g backup-fetch /restore base_000000010000000000000004',
      'wal-g wal-push pg_wal/000000010000000000000004',
      'wal-g wal-fetch 000000010000000000000004 pg_wal/RECOVERYXLOG',
      'wal-g backup-list --json --detail',
      'wal-g delete retain FULL 7 --confirm',
    ])
    for (const p of plans) {
      expect(p.args.join(' ')).not.toContain('s3cret')
      expect(p.env.PGPASSWORD).toBe('s3cret')
    }
  })
})

describe('wal-g through charge-ops in PostgreSQL', () => {
  it('restore_command passes --engine wal-g and no secret', async () => {
    const {restoreCommand, archiveCommand} = await import('../../src/wal/command-lines.js')
    const options = {
      repository: 's3://b/p',
      stack: 'prod',
      awsEnvFile: '/etc/charge-ops/s3.env',
      engine: 'wal-g' as const,
      node: '/usr/bin/node',
      entry: '/opt/charge-ops/bin/run.js',
    }
    expect(restoreCommand(options)).toBe(
      '/usr/bin/node /opt/charge-ops/bin/run.js wal fetch %f %p --repo s3://b/p --stack prod --aws-env-file /etc/charge-ops/s3.env --engine wal-g',
    )
    expect(archiveCommand(options)).toBe(
      '/usr/bin/node /opt/charge-ops/bin/run.js wal push %p --repo s3://b/p --stack prod --aws-env-file /etc/charge-ops/s3.env --engine wal-g',
    )
  })
})
