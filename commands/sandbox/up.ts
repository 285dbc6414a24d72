import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {SandboxSummary} from '../../src/sandbox/sandbox.js'

export default class SandboxUp extends BaseCommand<typeof SandboxUp> {
  static summary =
    'Create (or reuse) a private Charge Analysis stack under .charge-ops/sandbox and load it with sample data.'
  static description =
    'Starts its own PostgreSQL 15 cluster, redis-server and Chroma server on free loopback ports, writes a .env with fresh secrets (0600) and a charge-ops.yaml, ' +
    'bootstraps and migrates the database, starts the bundled service, seeds the knowledge base, uploads the sample sessions and waits for their analyses. ' +
    'Running it again reuses everything that exists or runs.'
  static examples = ['<%= config.bin %> sandbox up', '<%= config.bin %> sandbox up --dir /tmp/my-sandbox --json']
  static flags = {
    dir: Flags.string({description: 'sandbox directory', default: '.charge-ops/sandbox'}),
  }

  async run(): Promise<SandboxSummary> {
    const {sandboxUp} = await import('../../src/sandbox/sandbox.js')
    const s = await sandboxUp({
      dir: this.flags.dir,
      logger: this.logger,
      tty: this.interactive,
      quiet: this.flags.quiet || this.jsonEnabled(),
    })
    const kinds =
      Object.entries(s.findings.byKind)
        .map(([k, n]) => `${n} ${k.replace('_', ' ')}`)
        .join(', ') || 'none'
    this.log('')
    this.log(`Sandbox ready in ${s.dir}`)
    if (s.webUrl)
      this.log(
        `  Open the web UI     ${s.webUrl}   (sign in with the token of: ${s.tokenCommand}, after the export below)`,
      )
    this.log(
      `  API                 ${s.apiUrl}  (PostgreSQL :${s.ports.postgres}, Redis :${s.ports.redis}, Chroma :${s.ports.chroma})`,
    )
    this.log(
      `  sessions analysed   ${s.sessions.analysed}/${s.sessions.uploaded}${s.sessions.failed ? ` (${s.sessions.failed} failed)` : ''}`,
    )
    this.log(`  findings            ${s.findings.total}: ${kinds}`)
    this.log(`  knowledge base      ${s.knowledge.documents} documents, ${s.knowledge.passages} passages`)
    if (s.knowledge.topHit)
      this.log(`  search "${s.knowledge.query}"\n    → ${s.knowledge.topHit.title}: ${s.knowledge.topHit.excerpt}…`)
    this.log('')
    this.log('Try next:')
    for (const line of s.nextSteps) this.log(`  ${line}`)
    return s
  }
}
