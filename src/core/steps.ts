/**
 * The one step runner for long multi-step commands (upgrade, recover, sandbox up): each step's
 * title, a note when it finishes, and the time it took. Progress goes to stderr only, because
 * stdout carries the command's result (and --json): `charge-ops upgrade … > out.txt` from a
 * terminal must leave only the result in the file. On a TTY listr2 draws the list (loaded lazily:
 * it costs start-up time); elsewhere (CI, pipes, cron) plain "→ title" / "✓ title — note (1.2 s)"
 * lines; with `quiet` (--quiet, --json) nothing at all.
 */

export interface Step {
  title: string
  /** `note` shows a running detail (listr's output line, an indented line otherwise); the returned text follows the title */
  run: (note: (text: string) => void) => Promise<string | void>
  /** true when a resumed run already did this step: it is shown as skipped and not run */
  done?: () => boolean
}

export interface StepsOptions {
  tty: boolean
  /** where the plain lines go (the command's logger: stderr, redacted) */
  logger: {info(message: string): void}
  quiet?: boolean
  /** a line printed before the first step */
  heading?: string
}

export async function runSteps(steps: Step[], options: StepsOptions): Promise<void> {
  if (options.quiet) {
    for (const step of steps) if (!step.done?.()) await step.run(() => {})
    return
  }
  if (options.heading) options.logger.info(options.heading)
  if (options.tty) return runWithListr(steps)
  for (const step of steps) {
    if (step.done?.()) {
      options.logger.info(`↓ ${step.title} (already done)`)
      continue
    }
    const started = Date.now()
    options.logger.info(`→ ${step.title}`)
    try {
      const note = await step.run((text) => options.logger.info(`  ${text}`))
      options.logger.info(`✓ ${step.title}${note ? ` — ${note}` : ''} (${seconds(started)})`)
    } catch (error) {
      options.logger.info(`✗ ${step.title} (${seconds(started)})`)
      throw error
    }
  }
}

async function runWithListr(steps: Step[]): Promise<void> {
  const {Listr, ListrLogger, ProcessOutput} = await import('listr2')
  // listr2 renders to stdout by default: both of its streams go to stderr here
  const logger = new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)})
  const list = new Listr(
    steps.map((step) => ({
      title: step.title,
      skip: () => (step.done?.() ? `${step.title} (already done)` : false),
      task: async (_ctx: unknown, task: {title: string; output: string}) => {
        const note = await step.run((text) => {
          task.output = text
        })
        if (note) task.title = `${step.title} — ${note}`
      },
    })),
    {
      concurrent: false,
      exitOnError: true,
      rendererOptions: {collapseSubtasks: false, collapseErrors: false, logger},
      fallbackRendererOptions: {logger},
    },
  )
  await list.run()
}

const seconds = (started: number) => `${((Date.now() - started) / 1000).toFixed(1)} s`
