/**
 * Shows the pipeline's steps: listr2 on a TTY (imported lazily), plain lines on stderr otherwise
 * (CI, pipes, --json). Stops at the first failure and rethrows it.
 */
import type {Logger} from '../output/logger.js'

export interface DisplayedTask {
  title: string
  run: () => Promise<string | void>
}

export async function runTasks(tasks: DisplayedTask[], options: {tty: boolean; logger: Logger; heading?: string}): Promise<void> {
  if (options.heading) options.logger.info(options.heading)
  if (options.tty) {
    const {Listr} = await import('listr2')
    const list = new Listr(
      tasks.map((t) => ({
        title: t.title,
        task: async (_ctx: unknown, task: {title: string}) => {
          const note = await t.run()
          if (note) task.title = `${t.title} — ${note}`
        },
      })),
      {concurrent: false, exitOnError: true, rendererOptions: {collapseErrors: false}},
    )
    await list.run()
    return
  }
  for (const t of tasks) {
    const started = Date.now()
    options.logger.info(`→ ${t.title}`)
    try {
      const note = await t.run()
      options.logger.info(`✓ ${t.title}${note ? ` — ${note}` : ''} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
    } catch (error) {
      options.logger.info(`✗ ${t.title} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
      throw error
    }
  }
}
