/**
 * Prometheus' own tools for tests: `promtool` (Debian's `prometheus` package) judges the metrics
 * charge-ops writes and the rules `charge-ops monitoring` generates. Missing → a loud failure with
 * the install command, never a skip.
 */
import {requireBinary} from './binaries.js';
import {runUnchecked, type RunResult} from './process.js';

export const PROMETHEUS_INSTALL_HINT = 'apt-get install -y prometheus prometheus-postgres-exporter prometheus-redis-exporter';

export function promtoolPath(): string {
  return requireBinary('promtool', PROMETHEUS_INSTALL_HINT);
}

/** `promtool check metrics` on an exposition text: exit code and every lint finding (stdout + stderr). */
export async function promtoolCheckMetrics(text: string): Promise<{code: number | null; findings: string}> {
  const r = await runUnchecked(promtoolPath(), ['check', 'metrics'], {input: text, timeoutMs: 30_000});
  return {code: r.code, findings: `${r.stdout}${r.stderr}`.trim()};
}

/** Runs promtool with arguments (check rules / test rules / check config). */
export function promtool(args: string[], opts: {cwd?: string} = {}): Promise<RunResult> {
  return runUnchecked(promtoolPath(), args, {cwd: opts.cwd, timeoutMs: 60_000});
}
