/** Flags shared by every command that reads or writes the backup repository: defined once. */
import {Flags} from '@oclif/core'

export const repoFlag = Flags.string({description: 'backup repository: a directory or s3://BUCKET/PREFIX (default: backup.repository)', env: 'CHARGE_OPS_REPO'})

export const stackFlag = Flags.string({description: "stack name: the repository folder (default: charge-ops.yaml's stack)"})

export const encryptFlag = Flags.string({
  description: 'encrypt / decrypt parts with this key file (32 random bytes or 64 hex chars, mode 0600); default backup.encryption.keyFile',
  env: 'CHARGE_OPS_ENCRYPT_KEY_FILE',
})

export const metricsFileFlag = Flags.string({description: 'Prometheus textfile to update (node_exporter textfile collector)', env: 'CHARGE_OPS_METRICS_FILE'})

export const pingUrlFlag = Flags.string({description: 'healthchecks-style URL pinged on start (/start), success and failure (/fail)', env: 'CHARGE_OPS_PING_URL'})
