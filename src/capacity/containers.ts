/**
 * The compose stack's containers as `docker compose ps` reports them, judged against the topology:
 * every long-running service running (and healthy where it has a health check), one-off services
 * (migrate) exited 0. Used by `doctor` and `capacity` on the compose target; each finding names
 * the service and the command that fixes it.
 */
import {measure, unknown} from './check-kit.js'
import type {Check, CheckResult} from './types.js'
import {run} from '../core/proc/exec.js'
import {composeInvocation, IN_CONTAINER_VARIABLE, parseComposePs, type ContainerState} from '../topology/host.js'

export {parseComposePs, type ContainerState}

/** One-off services of init's compose file: done when exited 0. */
const ONE_OFF = new Set(['migrate'])

export function judgeContainers(
  rows: ContainerState[],
  composeCommand: string,
): Array<{service: string; ok: boolean; message: string; remedy: string}> {
  return rows.map((r) => {
    if (ONE_OFF.has(r.service)) {
      const ok = r.state === 'exited' ? r.exitCode === 0 : r.state === 'running'
      return {
        service: r.service,
        ok,
        message: `${r.service}: ${r.state}${r.exitCode !== undefined && r.state === 'exited' ? ` (exit ${r.exitCode})` : ''}`,
        remedy: `${composeCommand} logs ${r.service}; then ${composeCommand} up -d`,
      }
    }
    const ok = r.state === 'running' && (r.health === '' || r.health === 'healthy')
    return {
      service: r.service,
      ok,
      message: `${r.service}: ${r.state}${r.health ? ` (${r.health})` : ''}`,
      remedy:
        r.state === 'running'
          ? `${composeCommand} logs ${r.service} (its health check fails), then ${composeCommand} restart ${r.service}`
          : `${composeCommand} up -d ${r.service}; ${composeCommand} logs ${r.service} says why it stopped`,
    }
  })
}

export const CONTAINERS_CHECK: Check = {
  id: 'containers',
  component: 'containers',
  title: 'Compose containers',
  async run(ctx): Promise<CheckResult[]> {
    const {settings} = ctx
    if (settings.target !== 'compose' || process.env[IN_CONTAINER_VARIABLE] === '1') return []
    const dc = composeInvocation(settings)
    const {project, display: composeCommand} = dc
    let rows: ContainerState[]
    try {
      const {stdout} = await run('docker', dc.args('ps', '--all', '--format', 'json'), {
        purpose: "list the stack's containers",
        timeout: 20_000,
      })
      rows = parseComposePs(stdout)
    } catch (error) {
      return [
        unknown(
          'containers',
          'containers.state',
          'Compose containers',
          `docker compose ps did not answer: ${(error as Error).message.split('\n')[0]}`,
          'Check that Docker runs and that this user may use it (DOCKER_HOST, the docker group).',
        ),
      ]
    }
    if (rows.length === 0)
      return [
        measure(ctx, {
          id: 'containers.state',
          component: 'containers',
          title: 'Compose containers',
          value: 0,
          unit: 'count',
          status: 'critical',
          message: `no containers of project ${project}`,
          remedy: `${composeCommand} up -d --wait`,
        }),
      ]
    return judgeContainers(rows, composeCommand).map((j) =>
      measure(ctx, {
        id: 'containers.state',
        component: 'containers',
        title: 'Compose container',
        labels: {service: j.service},
        value: j.ok ? 1 : 0,
        unit: 'bool',
        status: j.ok ? 'ok' : 'critical',
        message: j.message,
        remedy: j.remedy,
      }),
    )
  },
}
