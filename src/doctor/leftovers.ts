/**
 * doctor: the marks a killed charge-ops run left (issue 14) — each names its owner, so doctor can
 * tell a live run's from a dead one's and say which command clears it:
 *  - maintenance mode left on by a dead `backup files` / `restore db` / `restore files`;
 *  - a `restore files` journal whose run is dead (the next `restore files` finishes or undoes it —
 *    and starts the Chroma server it had stopped);
 *  - temp files of killed writes in the backup repository (`backup prune` removes them).
 */
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'

import {measure, yesNo} from '../capacity/check-kit.js'
import type {Check, CheckResult} from '../capacity/types.js'
import {pidAlive} from '../core/proc/pid.js'

export const leftoversCheck: Check = {
  id: 'leftovers',
  component: 'charge-ops',
  title: 'Marks left by killed runs',
  async run(ctx) {
    const results: CheckResult[] = []
    const {abandonedMaintenance} = await import('../service/maintenance.js')
    const flag = await abandonedMaintenance(ctx.settings).catch(() => undefined)
    results.push(
      yesNo(ctx, {
        id: 'leftovers.maintenance',
        component: 'charge-ops',
        title: 'Maintenance mode left on by a killed run',
        value: Boolean(flag),
        bad: Boolean(flag),
        message: flag
          ? `maintenance mode is on since ${flag.since}, set by \`${flag.owner!.command}\` (pid ${flag.owner!.pid}), which no longer runs: writes answer 503`
          : 'none',
        remedy: flag
          ? `Rerun \`charge-ops ${flag.owner!.command}\` (it takes the flag over and switches it off), or \`charge-ops service maintenance off\`.`
          : undefined,
      }),
    )
    const journal = join(ctx.settings.stateDir, 'restore-files.json')
    const lock = join(ctx.settings.stateDir, 'restore-files.lock')
    const holder = existsSync(lock) ? Number(readFileSync(lock, 'utf8').trim()) : undefined
    const interrupted = existsSync(journal) && !(holder && pidAlive(holder))
    results.push(
      yesNo(ctx, {
        id: 'leftovers.restore-files',
        component: 'charge-ops',
        title: 'Interrupted restore files',
        value: interrupted,
        bad: interrupted,
        message: interrupted
          ? `${journal} is left by a killed \`restore files\`: folders may be half swapped, the Chroma server may be stopped`
          : 'none',
        remedy:
          'Rerun `charge-ops restore files <the same id> --yes`: it finishes or undoes the interrupted swap and starts the Chroma server again.',
      }),
    )
    if (ctx.settings.repository) {
      try {
        const {openConfiguredRepository} = await import('../repository/open.js')
        const {listLeftoverTemporary} = await import('../repository/leftovers.js')
        const storage = await openConfiguredRepository(ctx.settings)
        const temporary = await listLeftoverTemporary(storage, ctx.settings.stack)
        const bytes = temporary.reduce((n, t) => n + t.size, 0)
        results.push(
          measure(ctx, {
            id: 'leftovers.repository-temp',
            component: 'charge-ops',
            title: 'Temp files of killed backups in the repository',
            value: temporary.length,
            unit: 'count',
            status: temporary.length > 0 ? 'warning' : 'ok',
            message:
              temporary.length > 0
                ? `${temporary.length} temp file(s), ${bytes} bytes, left by killed runs in ${storage.location} (e.g. ${temporary[0]!.key})`
                : 'none',
            remedy:
              '`charge-ops backup prune` removes them (the next backup does too); `backup list --all` lists them.',
            details: temporary.map((t) => ({key: t.key, bytes: t.size})),
          }),
        )
      } catch {
        // the repository check (capacity's backup checks) reports an unreachable repository
      }
    }
    return results
  },
}
