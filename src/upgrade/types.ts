/** The upgrade pipeline's options and result, shared by the pipeline (index.ts) and its targets. */
import type {Settings} from '../config/settings.js'
import type {Logger} from '../output/logger.js'
import type {Progress} from '../output/progress.js'
import type {UpgradeJournal, UpgradeTarget} from './journal.js'
import type {CommandPlan} from './plans.js'
import type {PreflightCheck} from './preflight.js'

export interface UpgradeOptions {
  settings: Settings
  logger: Logger
  /** version source: release dir, checkout, tarball or git ref (local); image tag (compose, k8s) */
  to?: string
  target?: UpgradeTarget
  dryRun?: boolean
  force?: boolean
  /** e.g. "24h": refuse unless a db backup was verified that recently */
  requireVerifiedWithin?: string
  tty?: boolean
  progress?: (label: string, totalBytes?: number) => Progress
  cwd?: string
  stopTimeoutMs?: number
  startTimeoutMs?: number
  /** asked before changing anything (the command's --yes / prompt) */
  confirm?: (question: string) => Promise<void>
  compose?: {file?: string; project?: string; image?: string; backendService?: string; workerService?: string}
  k8s?: {
    namespace?: string
    image?: string
    deployment?: string
    container?: string
    workerDeployment?: string
    manifests?: string
    rolloutTimeout?: string
  }
  /** compose / k8s: the web UI's public URL for verify's `curl -f` (default: the first ALLOWED_ORIGINS of the backend .env) */
  appUrl?: string
  now?: () => Date
}

export interface UpgradeResult {
  outcome: 'succeeded' | 'dry-run' | 'up-to-date' | 'finished-interrupted' | 'nothing-to-resume'
  target: UpgradeTarget
  from?: {version: string | null; schemaHead: string | null}
  to?: {version: string; schemaHead: string | null; source: string}
  checks?: PreflightCheck[]
  /** planned steps (dry run) */
  plan?: Array<{step: string; title: string; action: string}>
  commandPlan?: CommandPlan
  journal?: UpgradeJournal
  message: string
}
