/**
 * Step progress goes to stderr, never stdout (issue 12: listr2 rendered upgrade's steps on stdout,
 * so `charge-ops upgrade … > out.txt` from a terminal wrote progress into the file). The built CLI
 * runs under a real pseudo-terminal (util-linux `script`), so the TTY renderer is the one in use;
 * `docker` and `charge-ops` are stand-in scripts on PATH that record their calls, and the compose
 * target's plan runs every step against them.
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runSteps} from '../../src/core/steps.js'

const ROOT = path.join(import.meta.dirname, '..', '..')
let dir: string

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist/commands/upgrade/index.js')))
    throw new Error('run `npm run build` first: this test runs the built CLI')
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-steps-'))
  fs.mkdirSync(path.join(dir, 'bin'))
  const fake = (name: string, body = '') =>
    fs.writeFileSync(path.join(dir, 'bin', name), `#!/bin/sh\necho "${name} $*" >> "${dir}/calls"\n${body}exit 0\n`, {
      mode: 0o755,
    })
  fake('charge-ops')
  // `compose ps --format json` answers healthy containers, so the verify step passes
  fake(
    'docker',
    `case "$*" in *" ps --format json"*) echo '{"Service":"backend","State":"running","Health":"healthy"}';; esac\n`,
  )
})

afterAll(() => fs.rmSync(dir, {recursive: true, force: true}))

describe('step progress on stderr', () => {
  it('upgrade on a terminal with stdout redirected: the file holds only the result, the terminal the steps', () => {
    const out = path.join(dir, 'out.txt')
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(ROOT, 'bin/run.js'))} upgrade --target compose --to 1.4.0 --image reg/backend --yes > ${JSON.stringify(out)}`
    // the repository holds the upgrade's lock (a compose upgrade is journalled and locked like a local one)
    const env = {
      ...process.env,
      PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`,
      CHARGE_OPS_REPO: path.join(dir, 'repo'),
      NO_COLOR: undefined,
      CI: undefined,
      CHARGE_OPS_JSON: undefined,
    }
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], {cwd: dir, env, encoding: 'utf8', timeout: 60_000})
    expect(r.status, r.stdout).toBe(0)
    expect(fs.readFileSync(path.join(dir, 'calls'), 'utf8')).toContain('compose')
    const result = fs.readFileSync(out, 'utf8')
    expect(result).toMatch(/^upgrade plan \(compose\) to 1\.4\.0:\n/)
    // listr2's marks and cursor codes were what leaked into the file before
    expect(result).not.toMatch(/[❯✔✖◼]|\u001B/)
    // what reached the terminal (stderr): the step titles
    expect(r.stdout).toContain('verified backup')
    expect(r.stdout).toContain('verify')
  })

  it('runSteps with a TTY writes nothing to stdout; quiet writes nothing at all and skips done steps', async () => {
    const written = {stdout: '', stderr: ''}
    const origOut = process.stdout.write.bind(process.stdout)
    const origErr = process.stderr.write.bind(process.stderr)
    process.stdout.write = ((chunk: string | Uint8Array) => (
      (written.stdout += String(chunk)),
      true
    )) as typeof process.stdout.write
    process.stderr.write = ((chunk: string | Uint8Array) => (
      (written.stderr += String(chunk)),
      true
    )) as typeof process.stderr.write
    const ran: string[] = []
    const lines: string[] = []
    try {
      await runSteps(
        [
          {title: 'first step', run: async () => void ran.push('a')},
          {title: 'second step', run: async () => 'a note'},
        ],
        {tty: true, logger: {info: (m) => lines.push(m)}},
      )
      await runSteps(
        [
          {title: 'q1', run: async () => void ran.push('q1')},
          {title: 'q2', done: () => true, run: async () => void ran.push('q2')},
        ],
        {tty: true, quiet: true, logger: {info: (m) => lines.push(m)}},
      )
    } finally {
      process.stdout.write = origOut
      process.stderr.write = origErr
    }
    expect(written.stdout).toBe('')
    expect(written.stderr).toContain('first step')
    expect(written.stderr).toContain('second step — a note')
    expect(ran).toEqual(['a', 'q1'])
    expect(lines).toEqual([])
  })

  it('without a TTY: plain lines through the logger, the failing step marked and its error rethrown', async () => {
    const lines: string[] = []
    const failing = runSteps(
      [
        {title: 'ok', run: async (note) => void note('detail')},
        {title: 'boom', run: async () => Promise.reject(new Error('no'))},
      ],
      {tty: false, logger: {info: (m) => lines.push(m)}, heading: 'doing it'},
    )
    await expect(failing).rejects.toThrow('no')
    expect(lines.map((l) => l.replace(/\(\d+\.\d s\)/, '(t)'))).toEqual([
      'doing it',
      '→ ok',
      '  detail',
      '✓ ok (t)',
      '→ boom',
      '✗ boom (t)',
    ])
  })
})
