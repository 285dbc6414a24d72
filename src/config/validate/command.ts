import {checkConnectivity, type ConnectCheck} from './connect.js'
import {renderText, reportJson, toSarif} from './render.js'
import {validateConfig, type ValidateOptions, type ValidationReport} from './runner.js'
import {sortFindings} from '../findings.js'

export interface RunValidateOptions extends ValidateOptions {
  connect?: {timeoutMs: number}
  version: string
  onProgress?: (message: string) => void
}

export interface ValidateCommandResult {
  report: Omit<ValidationReport, 'parsed' | 'exitCode'> & {exitCode: 0 | 1 | 2 | 5; connectivity?: ConnectCheck[]}
  text: string
  sarif: unknown
}

/**
 * What `charge-ops config validate` does: validate, optionally reach the dependencies, and render
 * text / SARIF. Exit code precedence: 2 (unreadable input) > 5 (unreachable) > 1 (findings) > 0.
 */
export async function runValidate(options: RunValidateOptions): Promise<ValidateCommandResult> {
  const report = validateConfig(options)
  let connectivity: ConnectCheck[] | undefined
  let exitCode: 0 | 1 | 2 | 5 = report.exitCode
  if (options.connect && report.parsed) {
    options.onProgress?.('checking PostgreSQL, Redis, Chroma and S3 …')
    const result = await checkConnectivity(report.parsed, {timeoutMs: options.connect.timeoutMs})
    connectivity = result.checks
    report.findings = sortFindings([...report.findings, ...result.findings])
    for (const f of result.findings) {
      if (f.severity === 'error') report.summary.errors++
      else if (f.severity === 'warning') report.summary.warnings++
    }
    const unreachable = result.checks.some((c) => c.status === 'failed' && c.code !== 'PG_VERSION')
    if (exitCode !== 2)
      exitCode = unreachable
        ? 5
        : report.summary.errors > 0 || (report.strict && report.summary.warnings > 0)
          ? 1
          : exitCode
  }
  const json = {...reportJson(report), exitCode, ...(connectivity ? {connectivity} : {})}
  let text = renderText(report)
  if (connectivity) {
    const width = Math.max(...connectivity.map((c) => c.service.length))
    text +=
      '\n\nconnectivity:\n' +
      connectivity
        .map(
          (c) =>
            `  ${c.service.padEnd(width)}  ${c.status.padEnd(7)}  ${c.detail}${c.durationMs !== undefined ? ` (${c.durationMs} ms)` : ''}`,
        )
        .join('\n')
  }
  return {report: json, text, sarif: toSarif(report, options.version)}
}
