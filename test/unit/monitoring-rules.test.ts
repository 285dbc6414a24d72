/**
 * The generated monitoring files judged by Prometheus' own tools: `promtool check config` (with
 * the rules it references) for every target, `promtool check rules`, and `promtool test rules`
 * unit tests — every alert fires on synthetic series that should page and stays quiet on ones
 * that should not (e.g. a db backup 27 h old at a daily schedule fires, 23 h does not).
 */
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {parse, stringify} from 'yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {loadSettings, type Settings} from '../../src/config/settings.js'
import {applyPlan} from '../../src/core/fs/file-plan.js'
import {planMonitoring, RULES_FILE} from '../../src/monitoring/index.js'
import {promtool} from '../support/prometheus.js'
import {RULE_TESTS} from './monitoring-rule-cases.js'

let dir: string
let settings: Settings

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'monitoring-rules-'))
  writeFileSync(join(dir, 'charge-ops.yaml'), 'stack: s\n')
  settings = loadSettings({cwd: dir, env: {}})
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('generated monitoring files', () => {
  for (const target of ['local', 'compose', 'k8s'] as const) {
    it(`${target}: promtool check config (and the rules it loads) passes`, async () => {
      const out = join(dir, target)
      // with an Alertmanager: the `alerting:` section is judged too
      await applyPlan(planMonitoring(settings, {target, targets: {alertmanagers: ['alertmanager:9093']}}).files, out)
      const r = await promtool(['check', 'config', join(out, 'prometheus.yml')])
      expect(`${r.stdout}${r.stderr}`).toMatch(/SUCCESS: \d+ rules found/)
      expect(r.code).toBe(0)
    })
  }

  it('every alert has a severity, a summary, a description naming a charge-ops command and a runbook section', () => {
    const {files} = planMonitoring(settings, {target: 'local'})
    const doc = parse(files.find((f) => f.path === RULES_FILE)!.content) as {groups: {rules: Record<string, any>[]}[]}
    const alerts = doc.groups.flatMap((g) => g.rules).filter((r) => r.alert)
    const runbook = readFileSync(join(import.meta.dirname, '../../docs/monitoring.md'), 'utf8')
    expect(alerts.length).toBeGreaterThanOrEqual(25)
    for (const a of alerts) {
      expect(['critical', 'warning']).toContain(a.labels.severity)
      expect(a.annotations.summary.length).toBeGreaterThan(10)
      expect(a.annotations.description).toMatch(/`charge-ops [a-z]/)
      expect(a.annotations.runbook_url).toMatch(/docs\/monitoring\.md#chargeops[a-z]+$/)
      expect(runbook, `docs/monitoring.md has no runbook section for ${a.alert}`).toContain(`\n### ${a.alert}\n`)
    }
  })

  it(
    'promtool test rules: each alert fires on series that should page, and stays quiet otherwise',
    {timeout: 180_000},
    async () => {
      const {files} = planMonitoring(settings, {target: 'local'})
      const rules = parse(files.find((f) => f.path === RULES_FILE)!.content) as {
        groups: {rules: Record<string, any>[]}[]
      }
      // Annotations are templates judged by `promtool check rules` (above) and seen expanded in the
      // end-to-end test; exp_alerts would have to spell each one out, so the unit tests use the
      // rules without them: what they test is when each alert fires and with which labels.
      for (const g of rules.groups) for (const r of g.rules) delete r.annotations
      writeFileSync(join(dir, 'rules-under-test.yml'), stringify(rules, {lineWidth: 0}))
      // promtool evaluates every rule at every evaluation_interval up to eval_time: the cases that
      // look days ahead (no `for:` in them) run at 30 min steps, the rest at 1 min
      const long = RULE_TESTS.filter((t) => t.alert_rule_test.some((c) => /\d+[hd]$/.test(c.eval_time)))
      const short = RULE_TESTS.filter((t) => !long.includes(t))
      // promtool's real time is mostly its on-disk storage per test group, not CPU: run in parallel
      const chunks = [long, ...[0, 1, 2].map((k) => short.filter((_, i) => i % 3 === k))]
      chunks.forEach((tests, k) =>
        writeFileSync(
          join(dir, `tests-${k}.yml`),
          stringify(
            {rule_files: ['rules-under-test.yml'], evaluation_interval: k === 0 ? '30m' : '1m', tests},
            {lineWidth: 0},
          ),
        ),
      )
      const check = await promtool(['check', 'rules', join(dir, 'rules-under-test.yml')])
      expect(check.code).toBe(0)
      for (const r of await Promise.all(
        chunks.map((_, k) => promtool(['test', 'rules', `tests-${k}.yml`], {cwd: dir})),
      )) {
        expect(`${r.stdout}${r.stderr}`).toContain('SUCCESS')
        expect(r.code, `${r.stdout}${r.stderr}`).toBe(0)
      }
      // every alert of the file has at least one case where it fires and one where it does not
      const alerts = new Set(
        rules.groups
          .flatMap((g) => g.rules)
          .filter((x) => x.alert)
          .map((x) => x.alert as string),
      )
      const fired = new Set(
        RULE_TESTS.flatMap((t) => t.alert_rule_test.filter((c) => c.exp_alerts.length > 0).map((c) => c.alertname)),
      )
      const quiet = new Set(
        RULE_TESTS.flatMap((t) => t.alert_rule_test.filter((c) => c.exp_alerts.length === 0).map((c) => c.alertname)),
      )
      expect([...alerts].filter((a) => !fired.has(a))).toEqual([])
      expect([...alerts].filter((a) => !quiet.has(a))).toEqual([])
    },
  )
})
