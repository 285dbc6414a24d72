import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {MintedToken} from '../../src/service/token.js'

export default class ServiceToken extends BaseCommand<typeof ServiceToken> {
  static summary = 'Mint a bearer JWT for the service API (/api/v1), signed with SECRET_KEY.'
  static description = 'Prints only the token on stdout, so it can be captured: TOKEN=$(charge-ops service token).'
  static examples = [
    '<%= config.bin %> service token',
    '<%= config.bin %> service token --subject frontend --ttl 30d',
    'curl -H "Authorization: Bearer $(<%= config.bin %> service token)" http://127.0.0.1:8000/api/v1/sessions',
  ]
  static flags = {
    subject: Flags.string({description: 'who the token is for (the JWT sub)', default: 'ops'}),
    ttl: Flags.string({description: 'lifetime: 90s, 30m, 12h, 7d', default: '12h'}),
    scope: Flags.string({description: 'the JWT scope claim', default: 'api'}),
  }

  async run(): Promise<MintedToken> {
    const {mintServiceToken} = await import('../../src/service/token.js')
    const minted = await mintServiceToken(this.settings(), {
      subject: this.flags.subject,
      ttl: this.flags.ttl,
      scope: this.flags.scope,
    })
    process.stdout.write(this.jsonEnabled() ? '' : `${minted.bearer}\n`)
    this.logger.info(`token for "${minted.subject}" valid until ${minted.expiresAt}`)
    return minted
  }
}
