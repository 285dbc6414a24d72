import {CronExpressionParser} from 'cron-parser'

import type {Finding} from '../findings.js'
import {findingsFor} from './types.js'

const SPECIAL = /^@(reboot|yearly|annually|monthly|weekly|daily|midnight|hourly)$/

/**
 * Checks a standard 5-field cron expression (minute hour day-of-month month day-of-week, or an
 * @keyword). Returns the problem in words, or undefined when cron accepts it.
 */
export function cronProblem(expression: string): string | undefined {
  const expr = expression.trim()
  if (expr.startsWith('@')) return SPECIAL.test(expr) ? undefined : `unknown keyword ${expr.split(/\s/)[0]}`
  const fields = expr.split(/\s+/)
  if (fields.length !== 5)
    return `has ${fields.length} field${fields.length === 1 ? '' : 's'}; cron needs 5 (minute hour day-of-month month day-of-week)`
  try {
    // cron-parser v5 accepts an optional seconds field; we only ever hand it the 5 crontab fields.
    CronExpressionParser.parse(expr, {strict: false})
    return undefined
  } catch (error) {
    return (error as Error).message.split('\n')[0]
  }
}

/** What a schedule field can look like: numbers, * , - / ? L W # and 3-letter month / weekday names. */
const SCHEDULE_FIELD = /^([\d*,/?LW#-]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|sun|mon|tue|wed|thu|fri|sat)+$/i

const ENV_LINE = /^[A-Za-z_][A-Za-z0-9_]*\s*=/

/**
 * A crontab (user crontab format: 5 fields + command). Also flags an unescaped `%` in the command
 * (cron turns it into a newline, so `date +%F` silently breaks the job) and a last line without a
 * newline (cron ignores it).
 */
export function validateCrontab(text: string, file: string): Finding[] {
  const {findings, add} = findingsFor(file)
  const lines = text.split('\n')
  lines.forEach((raw, index) => {
    const line = index + 1
    const trimmed = raw.replace(/\r$/, '').trim()
    if (trimmed === '' || trimmed.startsWith('#') || ENV_LINE.test(trimmed)) return
    let expression: string
    let command: string
    if (trimmed.startsWith('@')) {
      const [keyword, ...rest] = trimmed.split(/\s+/)
      expression = keyword
      command = rest.join(' ')
    } else {
      const parts = trimmed.split(/\s+/)
      const scheduleFields = parts.slice(0, 5).findIndex((p) => !SCHEDULE_FIELD.test(p))
      if (scheduleFields !== -1) {
        add(
          'error',
          'cron/syntax',
          `cron line has ${scheduleFields} schedule field${scheduleFields === 1 ? '' : 's'} before the command; cron needs 5 (minute hour day-of-month month day-of-week)`,
          'Add the missing fields, e.g. 0 3 * * * for 03:00 every day.',
          line,
        )
        return
      }
      expression = parts.slice(0, 5).join(' ')
      command = parts.slice(5).join(' ')
      if (parts.length < 6) {
        add(
          'error',
          'cron/syntax',
          `cron line has ${Math.min(parts.length, 5)} of the 5 schedule fields and no command`,
          'Write: minute hour day-of-month month day-of-week command, e.g. 0 2 * * * charge-ops backup db --quiet',
          line,
        )
        return
      }
    }
    const problem = cronProblem(expression)
    if (problem) {
      add(
        'error',
        'cron/expression',
        `invalid cron schedule: ${problem}`,
        'Fix the schedule fields (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7); check it with crontab.guru-style tools.',
        line,
      )
      return
    }
    if (/(^|[^\\])%/.test(command)) {
      add(
        'warning',
        'cron/percent',
        'the command contains an unescaped %: cron turns it into a newline and the rest becomes standard input',
        'Escape it as \\% (e.g. date +\\%F).',
        line,
      )
    }
    if (command === '') add('error', 'cron/syntax', 'cron line has no command', 'Append the command to run.', line)
  })
  const lastNonEmpty = text.length > 0 && !text.endsWith('\n') && text.trim() !== ''
  if (lastNonEmpty) {
    const lastLine = lines.length
    const trimmed = lines[lastLine - 1].trim()
    if (trimmed !== '' && !trimmed.startsWith('#'))
      add(
        'warning',
        'cron/final-newline',
        'the last line has no newline: cron ignores it',
        'End the file with a newline.',
        lastLine,
      )
  }
  return findings
}
