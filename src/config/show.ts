import {isSecretKey, MASK, maskUrl} from '../output/redact.js'
import type {SettingSource, Settings} from './settings.js'

export interface ShownSetting {
  key: string
  value: string | number | boolean | null
  source: SettingSource
}

export interface ShowResult {
  configPath: string | null
  envFilePath: string | null
  settings: ShownSetting[]
}

/** The merged configuration with provenance; secrets are masked and URL passwords removed. */
export function describeSettings(settings: Settings): ShowResult {
  const rows: ShownSetting[] = []
  const add = (key: string, value: unknown, fallback: SettingSource = {source: 'default'}) => {
    if (value === undefined) return
    let shown = value as string | number | boolean | null
    if (typeof shown === 'string') shown = isSecretKey(key) ? (shown === '' ? '' : MASK) : maskUrl(shown)
    rows.push({key, value: shown, source: settings.sources[key] ?? fallback})
  }
  add('stack', settings.stack)
  add('target', settings.target)
  add('paths.stateDir', settings.stateDir)
  add('backup.repository', settings.repository)
  add(
    'backup.engine',
    settings.yaml.backup.engine,
    settings.configPath ? {source: 'charge-ops.yaml', file: settings.configPath} : undefined,
  )
  add('backup.compression', `${settings.yaml.backup.compression.algorithm} -${settings.yaml.backup.compression.level}`)
  add('backup.retention', JSON.stringify(settings.yaml.backup.retention))
  add('service.workers', settings.yaml.service.workers)
  add('service.poolSize', settings.yaml.service.poolSize)
  for (const [key, value] of Object.entries(settings.backendEnv)) add(key, value)
  return {configPath: settings.configPath ?? null, envFilePath: settings.envFilePath ?? null, settings: rows}
}

export function formatSource(source: SettingSource): string {
  if (source.source === 'default') return 'default'
  if (source.file) return source.line ? `${source.file}:${source.line}` : source.file
  if (source.source === 'environment') return `env ${source.name}`
  if (source.source === 'flag') return `flag ${source.name}`
  return source.source
}
