/**
 * Running charge-ops on the host of a compose deployment: the backend .env names the services as
 * the containers see them (postgres:5432, redis:6379, http://chroma:8000, /app/uploads). The host
 * reaches them through the ports the compose file publishes on 127.0.0.1 and the bind-mounted
 * folders that charge-ops.yaml's `compose` section records; this maps one view onto the other.
 * Inside a container of the stack (CHARGE_OPS_IN_CONTAINER=1, set by the service image) nothing is
 * mapped.
 */
import {resolve} from 'node:path'

import type {ChargeOpsYaml} from '../config/schema.js'
import {UPLOADS_MOUNT} from './index.js'

export const IN_CONTAINER_VARIABLE = 'CHARGE_OPS_IN_CONTAINER'

type Access = NonNullable<ChargeOpsYaml['compose']>

/** A URL whose host is an in-network service name, pointed at 127.0.0.1:<published port>. */
function remapUrl(url: string | undefined, ports: Record<string, number | undefined>): string | undefined {
  if (!url) return url
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return url
  }
  const port = ports[parsed.hostname]
  if (port === undefined) return url
  parsed.hostname = '127.0.0.1'
  parsed.port = String(port)
  return parsed.toString()
}

export interface HostView {
  env: Record<string, string | undefined>
  /** host folders for UPLOADS_DIR and CHROMA_PERSIST_DIRECTORY, relative to charge-ops.yaml */
  uploadsDir?: string
  chromaDir?: string
}

/** The .env values as the host must use them; undefined when the deployment is not compose or this runs in a container. */
export function composeHostView(
  yaml: Pick<ChargeOpsYaml, 'target' | 'compose'>,
  env: Record<string, string | undefined>,
  processEnv: NodeJS.ProcessEnv = process.env,
): HostView | undefined {
  if (yaml.target !== 'compose' || !yaml.compose || processEnv[IN_CONTAINER_VARIABLE] === '1') return undefined
  const access: Access = yaml.compose
  const ports: Record<string, number | undefined> = {
    postgres: access.hostPorts.postgres,
    redis: access.hostPorts.redis,
    chroma: access.hostPorts.chroma,
    backend: access.hostPorts.backend,
    pgbouncer: access.hostPorts.pgbouncer,
  }
  const out: Record<string, string | undefined> = {...env}
  for (const key of ['DATABASE_URL', 'MIGRATION_DATABASE_URL', 'REDIS_URL', 'CHROMA_URL', 'CHARGE_OPS_ADMIN_URL'])
    out[key] = remapUrl(env[key], ports)
  // the API as the host reaches it (doctor's /health probe)
  if (access.hostPorts.backend !== undefined) {
    out.HOST = '127.0.0.1'
    out.PORT = String(access.hostPorts.backend)
  }
  return {
    env: out,
    uploadsDir: env.UPLOADS_DIR === UPLOADS_MOUNT ? access.volumes.uploads : undefined,
    chromaDir: access.volumes.chroma,
  }
}

/**
 * `docker compose -f <file> -p <project>` of a compose deployment: the file charge-ops.yaml names
 * (default docker-compose.yml beside it) and the project (default: the stack, as init names it).
 */
export function composeInvocation(settings: {
  baseDir: string
  stack: string
  yaml: Pick<ChargeOpsYaml, 'paths' | 'compose'>
}): {file: string; project: string; args: (...rest: string[]) => string[]; display: string} {
  const file = resolve(settings.baseDir, settings.yaml.paths.composeFile ?? 'docker-compose.yml')
  const project = settings.yaml.compose?.project ?? settings.stack
  return {
    file,
    project,
    args: (...rest) => ['compose', '-f', file, '-p', project, ...rest],
    display: `docker compose -f ${file} -p ${project}`,
  }
}

export interface ContainerState {
  service: string
  state: string
  health: string
  exitCode?: number
}

/**
 * `docker compose ps --format json`: one object per line (compose ≥ 2.21) or one array (older).
 * One parser for capacity's container check, the compose upgrade's health check and recover.
 */
export function parseComposePs(output: string): ContainerState[] {
  const text = output.trim()
  if (!text) return []
  const rows = (text.startsWith('[') ? JSON.parse(text) : text.split('\n').map((l) => JSON.parse(l))) as Array<{
    Service?: string
    State?: string
    Health?: string
    ExitCode?: number
  }>
  return rows.map((r) => ({
    service: r.Service ?? '?',
    state: r.State ?? '?',
    health: r.Health ?? '',
    exitCode: r.ExitCode,
  }))
}
