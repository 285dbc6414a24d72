import {Flags} from '@oclif/core'
import {readFileSync} from 'node:fs'
import {join, resolve} from 'node:path'

import {BaseCommand, type BaseFlags} from '../src/cli/base-command.js'
import {UsageError} from '../src/errors.js'
import type {AnswersInput} from '../src/install/answers.js'
import type {ApplyResult} from '../src/core/fs/file-plan.js'

export interface InitResult extends ApplyResult {
  target: string
  reusedSecrets: string[]
}

export default class Init extends BaseCommand<typeof Init> {
  static summary = 'Write a complete, validated deployment (compose, k8s or local) from a few answers.'
  static description = `Asks (on a terminal) or takes from flags / an answers file: target, domain, environment, the database host's sizing, the S3 backup repository, PgBouncer and managed services. Writes the backend .env (fresh random secrets, mode 0600), the frontend .env.production, charge-ops.yaml and, per target, docker-compose.yml + nginx + postgresql.conf (pgtune) + redis.conf + bootstrap.sql (compose), Kubernetes manifests (k8s), or systemd units and timers (local).

Re-running is safe: identical files are left alone, secrets already on disk are reused, and a file that differs is shown as a diff and asked about — or, without a terminal, the run is refused (exit 2, nothing written) unless --force. --dry-run shows what would change. Repository credentials come only from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment, never from flags.

Exit codes: 0 written (or nothing to do); 2 invalid answers, files differ without --force, or cancelled at a prompt (Ctrl-C; nothing written); 5 --connect could not reach the S3 bucket.`

  static examples = [
    '<%= config.bin %> init',
    '<%= config.bin %> init --non-interactive --target compose --domain charge.example.com --dir /srv/charge --yes',
    '<%= config.bin %> init --non-interactive --target compose --domain charge.example.com --ram 16GB --cpus 8 --repo s3://backups/charge --dir /srv/charge --yes',
    '<%= config.bin %> init --answers answers.yaml --dir deploy --dry-run',
    '<%= config.bin %> init --target k8s --answers answers.yaml --dir k8s-deploy --force',
  ]

  static flags = {
    dir: Flags.string({description: 'directory to write into', default: '.'}),
    answers: Flags.string({description: 'answers file (YAML or JSON; flags override it)'}),
    'non-interactive': Flags.boolean({
      description: 'never prompt: every answer from flags / --answers (implied without a TTY)',
    }),
    force: Flags.boolean({description: 'overwrite files that differ from what init would write'}),
    'dry-run': Flags.boolean({description: 'show what would be written (and diffs), write nothing'}),
    connect: Flags.boolean({description: 'check that the S3 backup bucket is reachable before writing'}),
    target: Flags.string({options: ['compose', 'k8s', 'local'], description: 'where the stack runs'}),
    domain: Flags.string({description: 'public DNS name, e.g. charge.example.com'}),
    environment: Flags.string({
      options: ['production', 'staging', 'development'],
      description: 'ENVIRONMENT of the backend (default production)',
    }),
    stack: Flags.string({description: 'stack name (default charge-analysis)'}),
    ram: Flags.string({
      description: "the database host's RAM, e.g. 16GB (default: this machine's, or its cgroup limit)",
    }),
    cpus: Flags.integer({description: "the database host's CPU count (default: this machine's, or its cgroup limit)"}),
    storage: Flags.string({options: ['ssd', 'hdd', 'san'], description: 'database storage type (default ssd)'}),
    connections: Flags.integer({description: 'expected client connections (default 200)'}),
    repo: Flags.string({
      description:
        'backup repository: s3://BUCKET/PREFIX or an absolute directory (default for compose / local: <dir>/backups; k8s needs S3)',
    }),
    's3-endpoint': Flags.string({description: 'S3 endpoint URL for non-AWS storage (MinIO, OSS …)'}),
    's3-region': Flags.string({description: 'S3 region'}),
    pgbouncer: Flags.boolean({
      allowNo: true,
      description: 'put PgBouncer (transaction pooling) in front of PostgreSQL',
    }),
    'managed-db-host': Flags.string({
      description: 'managed PostgreSQL endpoint (host[:port]); with --managed-redis-host, no self-hosted database',
    }),
    'managed-redis-host': Flags.string({description: 'managed Redis endpoint (host[:port], TLS)'}),
    'data-dir': Flags.string({description: 'data directory on the host (default /var/lib/charge-analysis)'}),
    timezone: Flags.string({description: 'time zone of the schedule (default UTC)'}),
    namespace: Flags.string({description: 'k8s: namespace (default: the stack name)'}),
    'storage-class': Flags.string({description: 'k8s: StorageClass of the PersistentVolumeClaims'}),
  }

  async run(): Promise<InitResult> {
    const {parseAnswers, parseAnswersFile, mergeAnswers} = await import('../src/install/answers.js')
    const {planInit} = await import('../src/install/plan.js')
    const {applyPlanShowingDiffs, showDiff} = await import('../src/cli/file-plan.js')
    const {resolveSecrets} = await import('../src/install/secrets.js')
    const f = this.flags
    const dir = resolve(f.dir)

    let fromFile: AnswersInput | undefined
    if (f.answers) {
      let text: string
      try {
        text = readFileSync(f.answers, 'utf8')
      } catch (error) {
        throw new UsageError(`${f.answers}: cannot read the answers file (${(error as NodeJS.ErrnoException).code})`, {
          hint: 'Check the --answers path.',
        })
      }
      fromFile = parseAnswersFile(text, f.answers)
    }
    const fromFlags = flagsToAnswers(f)
    let merged = mergeAnswers(fromFile as Record<string, unknown> | undefined, fromFlags)
    // Answers init can take from this machine (named in --help): RAM and CPUs (the cgroup's limits
    // when lower), and for compose / local a repository folder next to the deployment.
    const {detectCpus, detectRam} = await import('../src/install/host-defaults.js')
    const target = merged.target as string | undefined
    const detected = {
      host: {ram: `${Math.floor(detectRam() / 1024 ** 2)}MB`, cpus: detectCpus()},
      ...(target && target !== 'k8s' ? {backup: {repository: join(dir, 'backups')}} : {}),
    }
    const prompting = this.interactive && !f['non-interactive']
    if (prompting) {
      const {askAnswers} = await import('../src/install/questions.js')
      const inquirer = await import('@inquirer/prompts')
      merged = await cancellable(() =>
        askAnswers(merged, {
          input: (o) => inquirer.input(o, {output: process.stderr}),
          select: (o) => inquirer.select(o, {output: process.stderr}),
          confirm: (o) => inquirer.confirm(o, {output: process.stderr}),
        }),
      )
    }
    const answers = parseAnswers(mergeAnswers(detected, merged), f.answers ?? 'flags')

    if (f.connect) {
      const {checkRepositoryReachable} = await import('../src/install/connect.js')
      await checkRepositoryReachable(answers.backup)
    }

    const {secrets, reused} = resolveSecrets(dir)
    const credentials =
      process.env.AWS_ACCESS_KEY_ID && process.env.AWS_SECRET_ACCESS_KEY
        ? {accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY}
        : undefined
    const plan = planInit(answers, {secrets, installDir: dir, credentials, opsVersion: this.config.version})
    if (answers.target === 'compose') {
      // nginx needs a certificate to start: a self-signed one for the domain unless one is there (docs/init.md: replacing it)
      const {selfSignedCertificate} = await import('../src/install/certificate.js')
      plan.push(...(await selfSignedCertificate(dir, answers.domain)))
    }

    // Shows what differs before refusing, so the operator can decide.
    const result = await applyPlanShowingDiffs(plan, dir, {
      force: f.force,
      dryRun: f['dry-run'],
      confirm: prompting
        ? async (o) => {
            showDiff(o)
            const {confirm} = await import('@inquirer/prompts')
            return cancellable(() =>
              confirm(
                {message: `${o.path} differs from what init would write (diff above). Overwrite it?`, default: false},
                {output: process.stderr},
              ),
            )
          }
        : undefined,
    })
    if (result.dryRun) for (const o of result.files) showDiff(o)

    const verb: Record<string, string> = result.dryRun
      ? {create: 'would create', update: 'would update', unchanged: 'unchanged', mode: 'would chmod', kept: 'kept'}
      : {create: 'created', update: 'updated', unchanged: 'unchanged', mode: 'chmod', kept: 'kept (your version)'}
    for (const o of result.files) this.log(`${verb[o.action].padEnd(18)} ${o.mode}  ${o.path}`)
    if (!result.dryRun && answers.target === 'compose') {
      const {prepareComposeFolders} = await import('../src/install/certificate.js')
      prepareComposeFolders(dir, answers.backup.repository, answers.stack)
    }
    if (!result.dryRun) {
      this.logger.info(
        `${answers.target} deployment in ${dir}${reused.length ? ` (kept ${reused.length} existing secret(s))` : ''}; next: charge-ops config validate --strict --config ${dir}/charge-ops.yaml`,
      )
    }
    return {...result, target: answers.target, reusedSecrets: reused}
  }
}

/**
 * Ctrl-C (or Ctrl-D / a closed terminal) at a prompt: @inquirer/prompts rejects with an
 * ExitPromptError. That is the operator stopping, not a bug: exit 2, and nothing was written
 * (every question, including the overwrite confirmations, comes before the first write).
 */
async function cancellable<T>(ask: () => Promise<T>): Promise<T> {
  try {
    return await ask()
  } catch (error) {
    if (
      (error as Error | undefined)?.name === 'ExitPromptError' ||
      (error as Error | undefined)?.name === 'AbortPromptError'
    ) {
      throw new UsageError('init cancelled at the prompt; nothing was written', {
        code: 'CANCELLED',
        hint: 'Run charge-ops init again, or give every answer with flags / --answers and --non-interactive.',
      })
    }
    throw error
  }
}

function flagsToAnswers(f: BaseFlags<typeof Init>): Record<string, unknown> {
  const managed =
    f['managed-db-host'] || f['managed-redis-host']
      ? {databaseHost: f['managed-db-host'], redisHost: f['managed-redis-host']}
      : undefined
  return {
    target: f.target,
    domain: f.domain,
    environment: f.environment,
    stack: f.stack,
    host: {ram: f.ram, cpus: f.cpus, storage: f.storage, connections: f.connections},
    backup: {repository: f.repo, endpoint: f['s3-endpoint'], region: f['s3-region']},
    pgbouncer: f.pgbouncer,
    managed,
    dataDir: f['data-dir'],
    timezone: f.timezone,
    k8s: {namespace: f.namespace, storageClass: f['storage-class']},
  }
}
