import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {BuildResult} from '../../src/images/build.js'
import {IMAGE_NAMES, type ImageName} from '../../src/topology/index.js'

export default class ImagesBuild extends BaseCommand<typeof ImagesBuild> {
  static summary = "Build and tag the stack's images (service, postgres, chroma, redis, nginx) from this charge-ops."
  static description = `Builds images/<name>/Dockerfile of this installation with the local Docker daemon (DOCKER_HOST is honoured) and tags them <prefix>/<name>:<version>:
  service   the bundled API and worker with the charge-ops CLI inside (backend, worker and ops services, k8s CronJobs)
  postgres  PostgreSQL 15 with charge-ops inside, for archive_command / restore_command
  chroma    the chromadb package's server (Debian trixie base: it needs glibc >= 2.39)
  redis     Redis 7 (Debian's package)
  nginx     the TLS front door, serving the web UI's built files when this installation has them
Nothing is pulled but the base images (--base, --trixie-base): Debian packages come from the Debian mirror, Node from the npm registry (the Node version running this command, so that native modules match). An image whose Dockerfile, base and sources have not changed is kept (a label records their fingerprint); --force rebuilds. Progress goes to stderr; push the tags to your registry with docker push for other hosts.

Exit codes: 0 built (or up to date); 2 a base image is missing or bad flags; 5 Docker or the npm registry is unreachable.`

  static examples = [
    '<%= config.bin %> images build',
    '<%= config.bin %> images build --version 1.2.0 --prefix registry.example.com/charge',
    '<%= config.bin %> images build --base charge-ops/debian:bookworm --trixie-base charge-ops/debian:trixie --json',
    '<%= config.bin %> images build --only service --only postgres --force',
  ]

  static flags = {
    version: Flags.string({description: "the images' tag (default: this charge-ops' version)"}),
    prefix: Flags.string({description: 'repository prefix of the tags', default: 'charge-ops'}),
    base: Flags.string({
      description: 'the Debian bookworm base image',
      default: 'debian:bookworm-slim',
      env: 'CHARGE_OPS_IMAGES_BASE',
    }),
    'trixie-base': Flags.string({
      description: "the Debian trixie base image (Chroma's)",
      default: 'debian:trixie-slim',
      env: 'CHARGE_OPS_IMAGES_TRIXIE_BASE',
    }),
    only: Flags.string({
      description: 'build only these images (repeatable); postgres also builds service',
      options: [...IMAGE_NAMES],
      multiple: true,
    }),
    force: Flags.boolean({description: 'rebuild even when nothing changed'}),
  }

  async run(): Promise<BuildResult> {
    const {buildImages} = await import('../../src/images/build.js')
    const f = this.flags
    const result = await buildImages({
      version: f.version ?? this.config.version,
      prefix: f.prefix,
      base: f.base,
      trixieBase: f['trixie-base'],
      only: f.only as ImageName[] | undefined,
      force: f.force,
      // progress on stderr even with --json (stdout carries the result); --quiet silences it
      progress: (line) => (this.flags.quiet ? undefined : process.stderr.write(`images: ${line}\n`)),
    })
    for (const image of result.images)
      this.log(
        `${image.built ? 'built     ' : 'up to date'}  ${image.ref}  ${image.id.replace(/^sha256:/, '').slice(0, 12)}${image.built ? `  ${image.seconds}s` : ''}`,
      )
    return result
  }
}
