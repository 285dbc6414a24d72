/** src/core/fs: the one atomic write, the resumable journal and the local lock. */
import {spawn, spawnSync} from 'node:child_process'
import {once} from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {writeFileAtomicSync} from '../../../src/core/fs/atomic.js'
import {jsonJournal} from '../../../src/core/fs/journal.js'
import {acquireLocalLock} from '../../../src/core/fs/lock.js'
import {ExitCode} from '../../../src/errors.js'
import {waitUntil} from '../../support/index.js'

let dir: string
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'core-fs-'))
})
afterEach(() => fs.rmSync(dir, {recursive: true, force: true}))

const modeOf = (file: string) => fs.statSync(file).mode & 0o777

describe('writeFileAtomicSync', () => {
  it('sets the mode exactly, whatever the umask, and creates the directory', () => {
    const old = process.umask(0o077)
    try {
      writeFileAtomicSync(path.join(dir, 'a', 'b', 'public.txt'), 'x', {mode: 0o644})
    } finally {
      process.umask(old)
    }
    expect(modeOf(path.join(dir, 'a', 'b', 'public.txt'))).toBe(0o644)
    writeFileAtomicSync(path.join(dir, 'secret'), 'y', {mode: 0o600})
    expect(modeOf(path.join(dir, 'secret'))).toBe(0o600)
  })

  it('replaces the content and leaves no temp file behind', () => {
    const file = path.join(dir, 'f.json')
    writeFileAtomicSync(file, 'old', {mode: 0o644})
    writeFileAtomicSync(file, Buffer.from('new'), {mode: 0o644})
    expect(fs.readFileSync(file, 'utf8')).toBe('new')
    expect(fs.readdirSync(dir)).toEqual(['f.json'])
  })

  it('keepExisting keeps an existing file mode, and uses the given mode for a new file', () => {
    const file = path.join(dir, 'pgbouncer.ini')
    fs.writeFileSync(file, 'a')
    fs.chmodSync(file, 0o640)
    writeFileAtomicSync(file, 'b', {mode: 0o600, keepExisting: true})
    expect(modeOf(file)).toBe(0o640)
    writeFileAtomicSync(path.join(dir, 'new.ini'), 'c', {mode: 0o600, keepExisting: true})
    expect(modeOf(path.join(dir, 'new.ini'))).toBe(0o600)
  })

  it('leaves the old content when the write fails (target is a directory)', () => {
    fs.mkdirSync(path.join(dir, 'taken'))
    expect(() => writeFileAtomicSync(path.join(dir, 'taken'), 'x', {mode: 0o644})).toThrow()
    expect(fs.statSync(path.join(dir, 'taken')).isDirectory()).toBe(true)
    expect(fs.readdirSync(dir)).toEqual(['taken'])
  })
})

describe('jsonJournal', () => {
  it('round-trips state, 0600 by default, undefined when absent, removable', () => {
    const journal = jsonJournal<{step: number}>(path.join(dir, 'state', 'run.json'))
    expect(journal.load()).toBeUndefined()
    journal.save({step: 2})
    expect(journal.load()).toEqual({step: 2})
    expect(modeOf(journal.file)).toBe(0o600)
    journal.remove()
  })

  it('a damaged journal is JOURNAL_UNREADABLE (exit 1) naming the file and what to check, never "no journal"', () => {
    const journal = jsonJournal<{step: number}>(path.join(dir, 'run.json'), {
      what: 'the recover journal',
      hint: 'Check the .env.',
    })
    fs.writeFileSync(journal.file, '{half')
    let error: unknown
    try {
      journal.load()
    } catch (e) {
      error = e
    }
    expect(error).toMatchObject({code: 'JOURNAL_UNREADABLE', exitCode: ExitCode.findings})
    expect((error as Error).message).toContain(`the recover journal ${journal.file} cannot be read`)
    expect((error as {hint: string}).hint).toBe('Check the .env. Then move the file aside and rerun.')
    expect(fs.readFileSync(journal.file, 'utf8')).toBe('{half')
  })
})

describe('acquireLocalLock', () => {
  it('refuses a second holder with exit 4 and frees the lock on release', async () => {
    const file = path.join(dir, 'x.lock')
    const release = await acquireLocalLock(file, {what: 'restore files'})
    await expect(acquireLocalLock(file, {what: 'restore files'})).rejects.toMatchObject({
      exitCode: ExitCode.locked,
      message: `another restore files (pid ${process.pid}) is running`,
    })
    await release()
    expect(fs.existsSync(file)).toBe(false)
    await (
      await acquireLocalLock(file, {what: 'restore files'})
    )()
  })

  it('takes over the lock of a process that is gone', async () => {
    const file = path.join(dir, 'x.lock')
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout
    fs.writeFileSync(file, `${dead}\n`)
    const release = await acquireLocalLock(file, {what: 'upgrade'})
    expect(fs.readFileSync(file, 'utf8')).toBe(`${process.pid}\n`)
    await release()
  })
  it('takes over the lock of a process that exited and was not reaped yet (a zombie)', async () => {
    const file = path.join(dir, 'x.lock')
    // the child exits only once its parent has exec'd into `sleep 5`, which never waits for it. (A
    // child that exits at once races the exec: the shell may reap it first, and no zombie is left.)
    const parent = spawn('/bin/sh', ['-c', 'head -c1 <&3 >/dev/null & echo $!; exec sleep 5'], {
      stdio: ['ignore', 'pipe', 'ignore', 'pipe'],
    })
    try {
      const zombie = Number((await once(parent.stdout!, 'data'))[0].toString().trim())
      await waitUntil(async () => fs.readFileSync(`/proc/${parent.pid}/comm`, 'utf8').trim() === 'sleep', {
        timeoutMs: 5000,
        what: "the parent's exec",
      })
      ;(parent.stdio[3] as NodeJS.WritableStream).end('x')
      await waitUntil(async () => fs.readFileSync(`/proc/${zombie}/stat`, 'utf8').split(') ')[1].startsWith('Z'), {
        timeoutMs: 5000,
        what: 'the zombie',
      })
      fs.writeFileSync(file, `${zombie}\n`)
      const release = await acquireLocalLock(file, {what: 'upgrade'})
      expect(fs.readFileSync(file, 'utf8')).toBe(`${process.pid}\n`)
      await release()
    } finally {
      parent.kill('SIGKILL')
    }
  })
})
