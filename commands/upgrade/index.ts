import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {UpgradeResult} from '../../src/upgrade/index.js'
import type {RehearsalResult} from '../../src/upgrade/rehearse.js'

export default class Upgrade extends BaseCommand<typeof Upgrade> {
  static summary = "Upgrade the stack to a new version: the guide's seven steps as one reversible, journalled pipeline."
  static description =
    'Preflight (config, PostgreSQL/Redis/Chroma, service health, free disk, migrate lint of the new version, no downgrade, lock), then: ' +
    '1 verified backup, 2 maintenance + stop, 3 fetch, 4 install dependencies, 5 migrate up, 6 start, 7 verify. ' +
    'A failure undoes the completed steps in reverse (down migrations when every one exists, else the step-1 backup is restored), ' +
    'starts and verifies the previous release, and exits 6. A run that was killed is finished or rolled back by the next `upgrade`. ' +
    'The local target keeps releases in <stateDir>/releases/<version> with a `current` link; compose and k8s run docker compose / kubectl command plans (see --dry-run). ' +
    '--rehearse restores the newest backup into a scratch database, migrates and health-checks it there, and reports the expected downtime, touching nothing else.'
  static examples = [
    '<%= config.bin %> upgrade --to ./releases-in/1.2.0 --dry-run',
    '<%= config.bin %> upgrade --to charge-analysis-1.2.0.tar.gz --yes',
    '<%= config.bin %> upgrade --to v1.2.0 --require-verified-within 24h --yes --json',
    '<%= config.bin %> upgrade --to ./checkout --rehearse',
    '<%= config.bin %> upgrade --target compose --to 1.2.0 --image registry.example.com/charge/backend --dry-run',
    '<%= config.bin %> upgrade --target k8s --to 1.2.0 --image registry.example.com/charge/backend -n charge --dry-run',
    '<%= config.bin %> upgrade --yes     # finish or roll back an interrupted upgrade',
  ]
  static flags = {
    to: Flags.string({
      description:
        'the new version: a release directory, a charge-ops checkout, a .tar.gz/.tgz, or a git ref (local); the image tag (compose, k8s)',
    }),
    target: Flags.string({
      description: "deployment target (default: charge-ops.yaml's target)",
      options: ['local', 'compose', 'k8s'],
    }),
    'dry-run': Flags.boolean({
      description: 'run the preflight and print the plan (the exact commands for compose / k8s); change nothing',
    }),
    rehearse: Flags.boolean({
      description:
        'restore the newest backup into a scratch database, migrate and start the new version there, report timings and expected downtime',
      exclusive: ['dry-run'],
    }),
    force: Flags.boolean({description: "allow a downgrade below the database's migration head"}),
    'require-verified-within': Flags.string({
      description: 'refuse unless a database backup was verified this recently (e.g. 24h, 7d)',
    }),
    'stop-timeout': Flags.integer({
      description: 'seconds the worker may take to drain before it is killed',
      default: 30,
    }),
    'start-timeout': Flags.integer({description: 'seconds to wait for the API to answer /health', default: 30}),
    'compose-file': Flags.string({
      description: "compose: the compose file (default: charge-ops.yaml's paths.composeFile, else docker-compose.yml)",
      helpGroup: 'COMPOSE / K8S',
    }),
    project: Flags.string({description: 'compose: project name (-p)', helpGroup: 'COMPOSE / K8S'}),
    image: Flags.string({
      description:
        'compose: a registry prefix to pull <prefix>/service:<to> from (default: build the images here with `images build`); k8s: the service image without tag (default charge-ops/service)',
      helpGroup: 'COMPOSE / K8S',
    }),
    namespace: Flags.string({
      char: 'n',
      description: "k8s: namespace (default: the stack's name, as init writes it)",
      helpGroup: 'COMPOSE / K8S',
    }),
    deployment: Flags.string({
      description: 'k8s: the API deployment (default: backend, as init writes it)',
      helpGroup: 'COMPOSE / K8S',
    }),
    manifests: Flags.string({
      description: 'k8s: apply these manifests instead of `kubectl set image`',
      helpGroup: 'COMPOSE / K8S',
    }),
    'rollout-timeout': Flags.string({
      description: 'k8s: rollout status --timeout',
      default: '300s',
      helpGroup: 'COMPOSE / K8S',
    }),
    'app-url': Flags.string({
      description:
        "compose / k8s: the web UI's URL that verify checks with curl -f (default: the first https origin of ALLOWED_ORIGINS)",
      helpGroup: 'COMPOSE / K8S',
    }),
  }

  async run(): Promise<UpgradeResult | RehearsalResult> {
    const settings = this.settings()
    if (this.flags.rehearse) {
      if (!this.flags.to) this.error('--rehearse needs --to', {exit: 2})
      const {rehearseUpgrade} = await import('../../src/upgrade/rehearse.js')
      const {renderRehearsal} = await import('../../src/upgrade/render.js')
      const result = await rehearseUpgrade({
        settings,
        logger: this.logger,
        to: this.flags.to!,
        progress: (l, t) => this.progress(l, t),
        startTimeoutMs: this.flags['start-timeout'] * 1000,
        lastStopMs: this.flags['stop-timeout'] * 1000,
      })
      this.log(renderRehearsal(result))
      if (!result.ok) {
        const {ChecksFailedError} = await import('../../src/errors.js')
        throw new ChecksFailedError(`the rehearsal failed at ${result.failure?.step}: ${result.failure?.error}`, {
          code: 'UPGRADE_REHEARSAL_FAILED',
          hint: 'Production was not touched. Fix the new version and rehearse again.',
          data: {rehearsal: result},
        })
      }
      return result
    }
    const {runUpgrade} = await import('../../src/upgrade/index.js')
    const {renderResult} = await import('../../src/upgrade/render.js')
    const result = await runUpgrade({
      settings,
      logger: this.logger,
      to: this.flags.to,
      target: this.flags.target as 'local' | 'compose' | 'k8s' | undefined,
      dryRun: this.flags['dry-run'],
      force: this.flags.force,
      requireVerifiedWithin: this.flags['require-verified-within'],
      tty: this.interactive,
      progress: (l, t) => this.progress(l, t),
      stopTimeoutMs: this.flags['stop-timeout'] * 1000,
      startTimeoutMs: this.flags['start-timeout'] * 1000,
      confirm: (q) => this.confirm(q),
      compose: {file: this.flags['compose-file'], project: this.flags.project, image: this.flags.image},
      k8s: {
        namespace: this.flags.namespace,
        image: this.flags.image,
        deployment: this.flags.deployment,
        manifests: this.flags.manifests,
        rolloutTimeout: this.flags['rollout-timeout'],
      },
      appUrl: this.flags['app-url'],
    })
    this.log(renderResult(result))
    return result
  }
}
