/**
 * core/proc/filter: the buffer filter zstd runs through on `wal push`'s hot path. It returns the
 * filter's output, reports a failing filter with its stderr, and a missing binary as ENOENT (the
 * codec's "zstd not installed → gzip" fallback depends on it); and a filter outlives no SIGKILLed
 * parent (PR_SET_PDEATHSIG through setpriv, as every other child).
 */
import {spawn, spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, existsSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'

import {describe, expect, it} from 'vitest'

import {filterBuffer} from '../../../src/core/proc/filter.js'

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z')
  } catch {
    return false
  }
}

describe('filterBuffer', () => {
  it('round-trips through zstd and names a failing filter with its stderr', async () => {
    const data = Buffer.from('segment '.repeat(10_000))
    const packed = await filterBuffer('zstd', ['-q', '-1', '-c'], data)
    expect(packed.length).toBeLessThan(data.length / 10)
    expect(await filterBuffer('zstd', ['-q', '-d', '-c'], packed)).toEqual(data)
    await expect(filterBuffer('zstd', ['-q', '-d', '-c'], Buffer.from('not zstd'))).rejects.toThrow(
      /zstd -q -d -c failed \(exit 1\): .+/,
    )
    await expect(filterBuffer('no-such-filter-binary', [], data)).rejects.toMatchObject({code: 'ENOENT'})
  })

  it('dies with its parent when the parent is SIGKILLed', async () => {
    if (!spawnSync('sh', ['-c', 'command -v setpriv']).stdout.length)
      return expect.fail('setpriv (util-linux) is required')
    const dir = mkdtempSync(join(tmpdir(), 'charge-filter-'))
    try {
      const pidFile = join(dir, 'pid')
      const module = resolve(import.meta.dirname, '../../../dist/src/core/proc/filter.js')
      const script = `import {filterBuffer} from ${JSON.stringify(module)}; await filterBuffer('sh', ['-c', 'echo $$ > ${pidFile}; exec sleep 300'], Buffer.alloc(0))`
      const parent = spawn(process.execPath, ['--input-type=module', '-e', script], {stdio: 'ignore'})
      const deadline = Date.now() + 20_000
      while (!existsSync(pidFile) || readFileSync(pidFile, 'utf8').trim() === '') {
        expect(Date.now() < deadline, 'the filter did not start').toBe(true)
        await new Promise((r) => setTimeout(r, 50))
      }
      const filterPid = Number(readFileSync(pidFile, 'utf8').trim())
      expect(alive(filterPid)).toBe(true)
      parent.kill('SIGKILL')
      const gone = Date.now() + 10_000
      while (alive(filterPid) && Date.now() < gone) await new Promise((r) => setTimeout(r, 50))
      expect(alive(filterPid), 'the filter outlived its SIGKILLed parent').toBe(false)
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
