import {existsSync} from 'node:fs'
import {totalmem} from 'node:os'
import {basename, dirname, isAbsolute, relative, resolve} from 'node:path'

import {CliError} from '../../errors.js'
import {readConfigText} from '../files.js'
import {severityRank, sortFindings, type Finding} from '../findings.js'
import type {ChargeOpsYaml} from '../schema.js'
import {validateChargeOpsYaml} from './charge-ops-yaml.js'
import {validateCompose} from './compose.js'
import {validateCrontab} from './cron.js'
import {crossFileFindings, type ParsedSet} from './cross.js'
import {
  declaresProduction,
  fileModeFinding,
  holdsSecrets,
  parseEnvForValidation,
  validateBackendEnv,
  validateFrontendEnv,
} from './env.js'
import {parsePostgresqlConf, validatePostgresqlConf} from './postgresql-conf.js'
import {parseRedisConf, requirePass, validateRedisConf} from './redis-conf.js'
import {isPlaceholder} from './secrets.js'
import {FILE_KINDS, KIND_LABEL, type FileKind, type RuleContext} from './types.js'

/** Files looked for in the working directory when none is named. */
export const DEFAULT_FILES: Record<FileKind, string[]> = {
  'charge-ops-yaml': ['charge-ops.yaml', 'charge-ops.yml'],
  'backend-env': ['.env'],
  'frontend-env': ['.env.production'],
  compose: ['docker-compose.yml', 'docker-compose.yaml', 'compose.yaml', 'compose.yml'],
  'postgresql-conf': ['postgresql.conf'],
  'redis-conf': ['redis.conf'],
  crontab: ['crontab'],
}

/** Rules that mean "the input could not be read or parsed" (exit 2) rather than "findings" (exit 1). */
export const INPUT_RULES = new Set(['input/unreadable', 'input/empty', 'input/unknown-kind', 'yaml/syntax'])

export interface ValidateTarget {
  kind: FileKind
  path: string
}

export interface ValidateOptions {
  cwd?: string
  /** files named by flags, per kind (the other kinds are still looked for in cwd) */
  files?: Partial<Record<FileKind, string>>
  /** positional files; the kind is inferred from the name */
  positional?: string[]
  strict?: boolean
  hostRamBytes?: number
  env?: NodeJS.ProcessEnv
}

export interface ValidatedFile {
  kind: FileKind
  /** as shown in findings: relative to cwd when inside it */
  file: string
  path: string
  status: 'ok' | 'findings' | 'unreadable'
}

export interface ValidationReport {
  strict: boolean
  /** why strict rules applied */
  strictReason?: string
  hostRamBytes: number
  files: ValidatedFile[]
  findings: Finding[]
  summary: {errors: number; warnings: number; infos: number}
  exitCode: 0 | 1 | 2
  /** for --connect: the parsed inputs (not part of the printed report) */
  parsed?: ParsedSet & {yamlValue?: ChargeOpsYaml}
}

/** Infers a file's kind from its name, for positional arguments. */
export function inferKind(path: string): FileKind | undefined {
  const name = basename(path).toLowerCase()
  if (/(^|[._-])(docker-)?compose([._-].*)?\.ya?ml$/.test(name)) return 'compose'
  if (/charge-ops.*\.ya?ml$/.test(name)) return 'charge-ops-yaml'
  if (/postgres(ql)?.*\.conf$/.test(name)) return 'postgresql-conf'
  if (/redis.*\.conf$/.test(name)) return 'redis-conf'
  if (/(^crontab$|\.cron$|\.crontab$|^crontab[._-]|^cron[._-])/.test(name)) return 'crontab'
  if (/(frontend|\.env\.production$|^\.env\.prod$)/.test(name) && /env/.test(name)) return 'frontend-env'
  if (/(^\.env$|^\.env\.|\.env$|^env$|backend.*env)/.test(name)) return 'backend-env'
  return undefined
}

/**
 * Validates every configuration file found or named, then the cross-file rules, and returns all
 * findings at once. Never throws for bad input: unreadable files become findings (exit 2).
 */
export function validateConfig(options: ValidateOptions = {}): ValidationReport {
  const cwd = options.cwd ?? process.cwd()
  const env = options.env ?? process.env
  const display = (abs: string) => {
    const rel = relative(cwd, abs)
    return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs
  }
  const inputFindings: Finding[] = []
  const {targets, named} = namedTargets(options, cwd, display, inputFindings)
  // Positional files mean "exactly these"; flags only replace the file of their kind.
  const explicit = (options.positional?.length ?? 0) > 0

  // Read every file first: the strictness of the rules depends on the backend .env's ENVIRONMENT.
  const loaded: Loaded[] = []
  const load = (target: ValidateTarget) => loaded.push(loadTarget(target, display(target.path), inputFindings))
  for (const target of targets) load(target)

  // Without named files: look in cwd, and follow charge-ops.yaml's paths for the other kinds.
  if (!explicit) {
    for (const kind of FILE_KINDS) {
      if (named.has(kind)) continue
      const found = DEFAULT_FILES[kind].map((n) => resolve(cwd, n)).find((p) => existsSync(p))
      if (found) load({kind, path: found})
    }
  }
  const yamlLoaded = loaded.find((l) => l.kind === 'charge-ops-yaml' && l.text !== undefined)
  const yamlResult = yamlLoaded ? validateChargeOpsYaml(yamlLoaded.text!, yamlLoaded.file) : undefined
  if (yamlLoaded && yamlResult?.value && !options.positional?.length)
    followYamlPaths(yamlLoaded.path, yamlResult.value, named, loaded, load)

  const backendLoaded = loaded.find((l) => l.kind === 'backend-env' && l.text !== undefined)
  const backendParsed = backendLoaded ? parseEnvForValidation(backendLoaded.text!, backendLoaded.file) : undefined
  let strictReason: string | undefined
  if (options.strict) strictReason = '--strict'
  else if (backendParsed && declaresProduction(backendParsed))
    strictReason = `ENVIRONMENT=production in ${backendParsed.file}`
  else if (env.ENVIRONMENT?.toLowerCase() === 'production') strictReason = 'ENVIRONMENT=production in the environment'
  else if (yamlResult?.value?.environment === 'production')
    strictReason = `environment: production in ${yamlLoaded!.file}`
  const ctx: RuleContext = {strict: strictReason !== undefined, hostRamBytes: options.hostRamBytes ?? totalmem()}

  const findings: Finding[] = [...inputFindings]
  const parsed: ParsedSet = {}
  const files: ValidatedFile[] = []
  // the charge-ops.yaml and .env already parsed above are not parsed again
  const known = {
    yaml: yamlLoaded && {item: yamlLoaded, result: yamlResult!},
    backend: backendLoaded && {item: backendLoaded, parsed: backendParsed!},
  }
  for (const item of loaded) {
    const own = item.text === undefined ? [] : validateFile(item, item.text, ctx, parsed, known)
    findings.push(...own)
    own.push(...inputFindings.filter((f) => f.file === item.file))
    files.push({
      kind: item.kind,
      file: item.file,
      path: item.path,
      status: item.text === undefined ? 'unreadable' : own.some((f) => f.severity !== 'info') ? 'findings' : 'ok',
    })
  }
  findings.push(...crossFileFindings(parsed))

  if (loaded.length === 0 && inputFindings.length === 0) {
    findings.push({
      file: display(cwd),
      severity: 'error',
      rule: 'input/unreadable',
      message: `no configuration files found (looked for ${Object.values(DEFAULT_FILES).flat().join(', ')})`,
      fix: 'Run it in the deployment directory, or name the files: charge-ops config validate .env docker-compose.yml …',
    })
  }
  const sorted = sortFindings(findings)
  const summary = {
    errors: sorted.filter((f) => f.severity === 'error').length,
    warnings: sorted.filter((f) => f.severity === 'warning').length,
    infos: sorted.filter((f) => f.severity === 'info').length,
  }
  const exitCode = sorted.some((f) => INPUT_RULES.has(f.rule))
    ? 2
    : summary.errors > 0 || (ctx.strict && summary.warnings > 0)
      ? 1
      : 0
  return {
    strict: ctx.strict,
    strictReason,
    hostRamBytes: ctx.hostRamBytes,
    files,
    findings: sorted,
    summary,
    exitCode,
    parsed: {...parsed, yamlValue: yamlResult?.value},
  }
}

interface Loaded extends ValidateTarget {
  text?: string
  mode?: number
  file: string
}

/** The files named by flags and positional arguments (a positional name of no known kind is an input finding). */
function namedTargets(
  options: ValidateOptions,
  cwd: string,
  display: (abs: string) => string,
  inputFindings: Finding[],
): {targets: ValidateTarget[]; named: Set<FileKind>} {
  const targets: ValidateTarget[] = []
  const named = new Set<FileKind>()
  for (const kind of FILE_KINDS) {
    const path = options.files?.[kind]
    if (path) {
      targets.push({kind, path: resolve(cwd, path)})
      named.add(kind)
    }
  }
  for (const path of options.positional ?? []) {
    const kind = inferKind(path)
    if (!kind) {
      inputFindings.push({
        file: display(resolve(cwd, path)),
        severity: 'error',
        rule: 'input/unknown-kind',
        message: 'cannot tell which kind of configuration file this is from its name',
        fix: 'Name it with a flag instead: --env-file, --frontend-env, --compose, --postgresql-conf, --redis-conf, --crontab or --config.',
      })
      continue
    }
    targets.push({kind, path: resolve(cwd, path)})
    named.add(kind)
  }
  return {targets, named}
}

/** Reads one file; an empty or unreadable one is loaded without text and leaves an input finding. */
function loadTarget(target: ValidateTarget, file: string, inputFindings: Finding[]): Loaded {
  try {
    const read = readConfigText(target.path, KIND_LABEL[target.kind])
    if (read.text.trim() === '') {
      inputFindings.push({
        file,
        line: 1,
        severity: 'error',
        rule: 'input/empty',
        message: `${KIND_LABEL[target.kind]} is empty`,
        fix: 'Point at the real file; an empty configuration file is usually a failed or truncated write.',
      })
      return {...target, file}
    }
    return {...target, file, text: read.text, mode: read.mode}
  } catch (error) {
    if (!(error instanceof CliError)) throw error
    const match = /^.*?:(\d+): (.*)$/s.exec(error.message)
    const message = match
      ? match[2]
      : error.message.startsWith(`${target.path}: `)
        ? error.message.slice(target.path.length + 2)
        : error.message
    inputFindings.push({
      file,
      line: match ? Number(match[1]) : undefined,
      severity: 'error',
      rule: 'input/unreadable',
      message,
      fix: error.hint,
    })
    return {...target, file}
  }
}

/** The files charge-ops.yaml's `paths` name (relative to it) replace the ones found in cwd, unless named by a flag. */
function followYamlPaths(
  yamlPath: string,
  value: ChargeOpsYaml,
  named: Set<FileKind>,
  loaded: Loaded[],
  load: (target: ValidateTarget) => void,
): void {
  const base = dirname(yamlPath)
  const paths = value.paths
  const fromYaml: Partial<Record<FileKind, string | undefined>> = {
    'backend-env': paths.envFile,
    'frontend-env': paths.frontendEnvFile,
    compose: paths.composeFile,
    'postgresql-conf': paths.postgresqlConf,
    'redis-conf': paths.redisConf,
    crontab: paths.crontab,
  }
  for (const [kind, p] of Object.entries(fromYaml) as Array<[FileKind, string | undefined]>) {
    if (!p || named.has(kind)) continue
    const abs = resolve(base, p)
    const already = loaded.find((l) => l.kind === kind)
    if (already?.path === abs) continue
    // explicit paths in charge-ops.yaml must exist; the defaults (.env, .env.production) may not
    const isDefault = (kind === 'backend-env' && p === '.env') || (kind === 'frontend-env' && p === '.env.production')
    if (isDefault && !existsSync(abs)) continue
    if (already) loaded.splice(loaded.indexOf(already), 1)
    load({kind, path: abs})
  }
}

/** One file's own findings by its kind's rules; what the cross-file rules need goes into `parsed`. */
function validateFile(
  item: Loaded,
  text: string,
  ctx: RuleContext,
  parsed: ParsedSet,
  known: {
    yaml?: {item: Loaded; result: ReturnType<typeof validateChargeOpsYaml>}
    backend?: {item: Loaded; parsed: ReturnType<typeof parseEnvForValidation>}
  },
): Finding[] {
  const findings: Finding[] = []
  switch (item.kind) {
    case 'charge-ops-yaml': {
      const result = item === known.yaml?.item ? known.yaml.result : validateChargeOpsYaml(text, item.file)
      findings.push(...result.findings)
      parsed.yaml ??= {file: item.file, value: result.value, serviceLine: result.serviceLine}
      break
    }
    case 'backend-env': {
      const envParsed = item === known.backend?.item ? known.backend.parsed : parseEnvForValidation(text, item.file)
      // a second .env that declares production gets the production rules even if the first does not
      const envCtx = {...ctx, strict: ctx.strict || declaresProduction(envParsed)}
      findings.push(...validateBackendEnv(envParsed, envCtx))
      if (holdsSecrets(envParsed)) pushIf(findings, fileModeFinding(item.file, item.mode, envCtx))
      parsed.backendEnv ??= envParsed
      break
    }
    case 'frontend-env': {
      const fe = parseEnvForValidation(text, item.file)
      findings.push(...validateFrontendEnv(fe, ctx))
      break
    }
    case 'compose': {
      const result = validateCompose(text, item.file)
      findings.push(...result.findings)
      parsed.compose = result.model
      break
    }
    case 'postgresql-conf': {
      const pg = parsePostgresqlConf(text, item.file)
      findings.push(...validatePostgresqlConf(pg, ctx))
      parsed.postgresql = pg
      break
    }
    case 'redis-conf': {
      const redis = parseRedisConf(text, item.file)
      findings.push(...validateRedisConf(redis, ctx))
      const pass = requirePass(redis)
      if (pass && !isPlaceholder(pass.password)) pushIf(findings, fileModeFinding(item.file, item.mode, ctx))
      parsed.redis = redis
      break
    }
    case 'crontab':
      findings.push(...validateCrontab(text, item.file))
      break
  }
  return findings
}

function pushIf(list: Finding[], finding: Finding | undefined): void {
  if (finding) list.push(finding)
}

export {severityRank}
