/**
 * Runs a list of titled steps with progress: listr2 on a TTY (loaded lazily), plain
 * "→ title … ok (1.2 s)" lines on stderr otherwise (CI, pipes, --json).
 */
import type {Logger} from '../output/logger.js'

export interface Step {
  title: string
  /** returns a short note shown after the title (e.g. "reused", "started on :5433") */
  run: (note: (text: string) => void) => Promise<string | void>
}

export async function runSteps(steps: Step[], options: {tty: boolean; logger: Logger; quiet?: boolean}): Promise<void> {
  if (options.tty && !options.quiet) {
    const {Listr, ListrLogger, ProcessOutput} = await import('listr2')
    // progress belongs on stderr: stdout carries the summary (and --json)
    const logger = new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)})
    const list = new Listr(
      steps.map((step) => ({
        title: step.title,
        task: async (_ctx: unknown, task: {title: string; output: string}) => {
          const note = await step.run((text) => {
            task.output = text
          })
          if (note) task.title = `${step.title} — ${note}`
        },
      })),
      {concurrent: false, exitOnError: true, rendererOptions: {collapseSubtasks: false, logger}, fallbackRendererOptions: {logger}},
    )
    await list.run()
    return
  }
  for (const step of steps) {
    const started = Date.now()
    options.logger.info(`→ ${step.title}`)
    const note = await step.run((text) => options.logger.info(`  ${text}`))
    options.logger.info(`✓ ${step.title}${note ? ` — ${note}` : ''} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
  }
}
