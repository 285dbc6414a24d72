/**
 * The web UI in a real browser against a real sandbox (`charge-ops sandbox up`: its own PostgreSQL,
 * Redis, Chroma and the bundled service serving dist/web). Headless Chromium from Debian's
 * `chromium` package (scripts/install-system-deps), driven by playwright-core — no browser download.
 *
 * One sandbox, one browser, one page, in order: sign in; upload a session with a fault and watch its
 * row go queued → done over /ws without a reload (the worker is held with SIGSTOP so "queued" is
 * really seen); open it and find the over-temperature marker on the temperature curve at the
 * finding's time; search the knowledge base; switch language (remembered across a reload);
 * maintenance on → the banner and a rejected upload with the API's 503 and Retry-After. axe-core:
 * zero serious or critical violations on each screen; every interactive element reached by Tab; no
 * CSP violation. On failure a screenshot of the page goes to test-output/web-ui/<step>.png.
 * CHARGE_OPS_UPDATE_SCREENSHOTS=1 also writes docs/img/analysis.png (the README's picture).
 */
import {execFileSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {createRequire} from 'node:module'

import {chromium, type BrowserContext, type Page} from 'playwright-core'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {cleanEnv, onProcessExit, run} from '../support/index.js'

const ROOT = path.resolve(import.meta.dirname, '../..')
const CHROMIUM = '/usr/bin/chromium'
const OUT = path.join(ROOT, 'test-output', 'web-ui')
const FAULT_SAMPLE = path.join(ROOT, 'service/sample/session-02-overheat.csv')
const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

let dir: string
let profile: string
let env: NodeJS.ProcessEnv
let url: string
let token: string
let context: BrowserContext
let page: Page
const cspViolations: string[] = []
let unregister = () => {}

const cli = (...args: string[]) => run('node', ['bin/run.js', ...args], {cwd: ROOT, env, timeoutMs: 180_000})

/** Runs one step; on failure the page as it was goes to test-output/web-ui/<name>.png. */
async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (error) {
    fs.mkdirSync(OUT, {recursive: true})
    await page?.screenshot({path: path.join(OUT, `${name}.png`), fullPage: true}).catch(() => {})
    throw error
  }
}

async function axe(where: string): Promise<void> {
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.evaluate(AXE)
  const result = await page.evaluate(async () => {
    const r = await (globalThis as any).axe.run((globalThis as any).document, {resultTypes: ['violations']})
    return r.violations.map((v: any) => ({
      id: v.id,
      impact: v.impact,
      nodes: v.nodes.map((n: any) => n.target.join(' ')).slice(0, 3),
    }))
  })
  const serious = result.filter((v: {impact: string}) => v.impact === 'serious' || v.impact === 'critical')
  expect(serious, `axe on ${where}`).toEqual([])
}

/** Tabs through the page and returns the elements focus reached (by a stable description). */
async function tabWalk(max = 80): Promise<Set<string>> {
  await page.evaluate(() => ((globalThis as any).document.activeElement as any)?.blur())
  const reached = new Set<string>()
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab')
    const id = await page.evaluate(() => ((globalThis as any).document.activeElement as any).dataset.walk ?? '')
    if (!id || reached.has(id)) {
      if (id) break // wrapped around
      continue
    }
    reached.add(id)
  }
  return reached
}

async function everyInteractiveReachable(where: string): Promise<void> {
  const ids: string[] = await page.evaluate(() => {
    const all = [
      ...(globalThis as any).document.querySelectorAll(
        'a[href], button:not([disabled]), select, input, textarea, summary',
      ),
    ]
    return all
      .filter((el) => el.getClientRects().length > 0 || el.classList.contains('visually-hidden'))
      .map((el, i) => {
        el.dataset.walk = `${el.tagName.toLowerCase()}#${i}:${(el.getAttribute('aria-label') ?? el.textContent ?? el.id).trim().slice(0, 30)}`
        return el.dataset.walk
      })
  })
  const reached = await tabWalk(ids.length + 10)
  expect(
    ids.filter((id) => !reached.has(id)),
    `not reachable by Tab on ${where}`,
  ).toEqual([])
  expect(ids.length).toBeGreaterThan(3)
}

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: run scripts/install-system-deps (apt-get install -y chromium)`)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-web-'))
  fs.chmodSync(dir, 0o755) // PostgreSQL runs as the postgres user when we are root
  const sandbox = path.join(dir, 'sandbox')
  env = cleanEnv({CHARGE_OPS_CONFIG: path.join(sandbox, 'charge-ops.yaml')})
  // the sandbox's servers are daemons: take them down even if this process is killed
  unregister = onProcessExit(() => {
    try {
      execFileSync('node', ['bin/run.js', 'sandbox', 'down', '--dir', sandbox], {
        cwd: ROOT,
        stdio: 'ignore',
        timeout: 60_000,
      })
    } catch {
      // best effort at exit
    }
  })
  const up = JSON.parse((await cli('sandbox', 'up', '--dir', sandbox, '--json')).stdout)
  expect(up.webUrl, 'the service serves the UI (npm run build writes dist/web)').toBeTruthy()
  url = up.webUrl
  token = (await cli('service', 'token', '--ttl', '1h')).stdout.trim()
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-chromium-'))
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: {width: 1280, height: 1000},
    locale: 'en-GB',
    timezoneId: 'UTC',
  })
  page = context.pages()[0] ?? (await context.newPage())
  page.setDefaultTimeout(15_000)
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text())
  })
}, 300_000)

afterAll(async () => {
  await context?.close().catch(() => {})
  if (profile) fs.rmSync(profile, {recursive: true, force: true})
  if (dir) {
    await run('node', ['bin/run.js', 'sandbox', 'down', '--dir', path.join(dir, 'sandbox'), '--purge', '--yes'], {
      cwd: ROOT,
      env,
      timeoutMs: 120_000,
    }).catch(() => {})
    fs.rmSync(dir, {recursive: true, force: true})
  }
  unregister()
}, 180_000)

describe('web UI in headless Chromium', () => {
  it(
    'signs in, watches an upload live, finds the fault on the curve, searches, switches language, shows maintenance',
    {timeout: 240_000},
    async () => {
      await step('01-sign-in', async () => {
        await page.goto(url)
        await expect.poll(() => page.textContent('#token-hint')).toContain('charge-ops service token')
        await axe('sign-in')
        await everyInteractiveReachable('sign-in')
        await page.fill('#token', 'not.a.token')
        await page.click('form button[type=submit]')
        await page.waitForSelector('.signin .error')
        await page.fill('#token', token)
        await page.click('form button[type=submit]')
        await page.waitForSelector('table.sessions tbody tr')
        expect(await page.locator('table.sessions tbody tr').count()).toBe(5)
        await page.waitForSelector('.statusbar .dot.ok:has-text("live")')
        expect(await page.textContent('.statusbar')).toMatch(
          /PostgreSQL: ok.*Redis: ok.*Chroma: ok.*version \d+\.\d+\.\d+/,
        )
      })

      let analysisId = ''
      await step('02-upload-live', async () => {
        await axe('sessions')
        await everyInteractiveReachable('sessions')
        // every status a row shows, in order, and a marker that a reload would wipe
        await page.evaluate(() => {
          const w = globalThis as any
          w.__noReload = true
          w.__seen = {} as Record<string, string[]>
          const record = () => {
            for (const row of (globalThis as any).document.querySelectorAll('tr[data-analysis-id]')) {
              const id = row.dataset.analysisId!
              const status = row.querySelector('[data-status]')?.dataset.status ?? ''
              const list = (w.__seen[id] ??= [])
              if (list[list.length - 1] !== status) list.push(status)
            }
          }
          record()
          new (globalThis as any).MutationObserver(record).observe(
            (globalThis as any).document.querySelector('main')!,
            {subtree: true, childList: true, attributes: true, characterData: true},
          )
        })
        const before = new Set(
          await page.$$eval('tr[data-analysis-id]', (rows) => rows.map((r) => (r as any).dataset.analysisId!)),
        )
        // hold the worker so that "queued" is really there to be seen, then let it go
        const workerPid = Number(fs.readFileSync(path.join(dir, 'sandbox', 'run', 'worker-1.pid'), 'utf8').trim())
        process.kill(workerPid, 'SIGSTOP')
        try {
          await page.setInputFiles('#upload-input', FAULT_SAMPLE)
          await page.waitForSelector('li.upload.done')
          await page.waitForSelector('tr[data-analysis-id] [data-status="queued"]')
        } finally {
          process.kill(workerPid, 'SIGCONT')
        }
        const ids = await page.$$eval('tr[data-analysis-id]', (rows) => rows.map((r) => (r as any).dataset.analysisId!))
        analysisId = ids.find((id) => !before.has(id))!
        expect(analysisId).toMatch(/^[0-9a-f-]{36}$/)
        await page.waitForSelector(`tr[data-analysis-id="${analysisId}"] [data-status="done"]`, {timeout: 30_000})
        const seen: string[] = await page.evaluate((id) => (globalThis as any).__seen[id], analysisId)
        expect(seen[0]).toBe('queued')
        expect(seen[seen.length - 1]).toBe('done')
        expect(seen.filter((s) => !['queued', 'running', 'done'].includes(s))).toEqual([])
        expect(await page.evaluate(() => (globalThis as any).__noReload)).toBe(true)
      })

      await step('03-analysis', async () => {
        await page.click(`tr[data-analysis-id="${analysisId}"] a`)
        const marker = page.locator('[data-chart="temp"] .finding-marker[data-kind="over_temperature"]').first()
        await marker.waitFor()
        // the first over-temperature episode as the API states it
        const analysis: any = await (
          await fetch(`${url}api/v1/analyses/${analysisId}`, {headers: {authorization: `Bearer ${token}`}})
        ).json()
        const first = analysis.findings.find((f: any) => f.kind === 'over_temperature')
        expect(first).toBeTruthy()
        expect(Number(await marker.getAttribute('data-start'))).toBe(Date.parse(first.startedAt) / 1000)
        expect(Number(await marker.getAttribute('data-end'))).toBe(Date.parse(first.endedAt) / 1000)
        // …and drawn where that time is on the axis: left edge = (start - first sample) / span × plot width
        const geometry = await page.evaluate(() => {
          const over = (globalThis as any).document.querySelector('[data-chart="temp"] .u-over')!
          const m = over.querySelector('.finding-marker[data-kind="over_temperature"]')!
          return {width: over.clientWidth, left: parseFloat(m.style.left)}
        })
        const t0 = Date.parse(analysis.metrics.startedAt) / 1000
        const t1 = Date.parse(analysis.metrics.endedAt) / 1000
        const expected = ((Date.parse(first.startedAt) / 1000 - t0) / (t1 - t0)) * geometry.width
        expect(Math.abs(geometry.left - expected)).toBeLessThan(2)
        expect(await marker.getAttribute('aria-label')).toMatch(/Over temperature, critical/)
        // severity and the linked knowledge passages, the metrics table
        const item = page.locator('li.finding[data-kind="over_temperature"]').first()
        expect(await item.locator('.badge').textContent()).toBe('critical')
        expect(await item.locator('details.passages summary').textContent()).toContain('Battery over-temperature')
        expect(await page.locator('table.metrics').textContent()).toContain('Peak battery temperature')
        expect(await page.locator('.finding-marker').count()).toBe(analysis.findings.length)
        // the marker selects its finding
        await marker.click()
        await page.waitForSelector('li.finding.selected[data-kind="over_temperature"]')
        fs.mkdirSync(OUT, {recursive: true})
        await page.locator('section:has(#curves-title)').screenshot({path: path.join(OUT, 'analysis.png')})
        if (process.env.CHARGE_OPS_UPDATE_SCREENSHOTS === '1')
          fs.copyFileSync(path.join(OUT, 'analysis.png'), path.join(ROOT, 'docs/img/analysis.png'))
        await axe('analysis')
        await everyInteractiveReachable('analysis')
      })

      await step('04-knowledge', async () => {
        await page.click('nav a[href="/knowledge"]')
        await page.fill('#kb-q', 'coolant pump failed, battery temperature too high')
        await page.click('form[role=search] button')
        await page.waitForSelector('ol.results li')
        expect(await page.locator('ol.results li h3').first().textContent()).toContain('Battery over-temperature')
        await axe('knowledge')
      })

      await step('05-language', async () => {
        await page.selectOption('header select', 'zh')
        await expect.poll(() => page.textContent('main h1')).toBe('知识库')
        expect(await page.getAttribute('html', 'lang')).toBe('zh-CN')
        await page.reload()
        await expect.poll(() => page.textContent('main h1')).toBe('知识库') // remembered
        await axe('knowledge (zh)')
        await page.selectOption('header select', 'en')
        await expect.poll(() => page.textContent('main h1')).toBe('Knowledge base')
      })

      await step('06-maintenance', async () => {
        await page.click('nav a[href="/sessions"]')
        await page.waitForSelector('table.sessions')
        await cli('service', 'maintenance', 'on', '--reason', 'browser test')
        try {
          const banner = page.locator('[data-testid="maintenance-banner"]')
          await banner.waitFor({timeout: 20_000})
          expect(await banner.textContent()).toContain('browser test')
          await page.setInputFiles('#upload-input', FAULT_SAMPLE)
          const error = page.locator('li.upload.error .message').last()
          await error.waitFor()
          const text = (await error.textContent())!
          expect(text).toContain('503')
          expect(text).toContain('maintenance mode (browser test)')
          expect(text).toMatch(/retry after 120 s/)
          await axe('sessions in maintenance')
        } finally {
          await cli('service', 'maintenance', 'off')
        }
        await page.locator('[data-testid="maintenance-banner"]').waitFor({state: 'detached', timeout: 20_000})
        // a file that is not a session log: the API's 422 and its message, as the API states them
        await page.setInputFiles('#upload-input', {
          name: 'notes.csv',
          mimeType: 'text/csv',
          buffer: Buffer.from('a,b,c\n1,2,3\n'),
        })
        const refused = page.locator('li.upload.error .message').last()
        await page.waitForFunction(() =>
          /422/.test(
            (globalThis as any).document.querySelectorAll('li.upload.error .message')[
              (globalThis as any).document.querySelectorAll('li.upload.error .message').length - 1
            ]?.textContent ?? '',
          ),
        )
        const refusal = (await refused.textContent())!
        expect(refusal).toContain('422')
        expect(refusal).toContain('line 1: unexpected header "a,b,c"')
      })

      await step('07-sign-out', async () => {
        await page.click('header button:has-text("Sign out")')
        await page.waitForSelector('#token')
        expect(cspViolations).toEqual([])
      })
    },
  )
})
