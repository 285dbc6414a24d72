/** Version sources of `upgrade --to`: a git ref of this repository (compiled), a tarball, a checkout, a bad path. */
import {execFileSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {discardStaging, installDependencies, placeRelease, stageRelease} from '../../src/upgrade/release.js'
import {ROOT} from '../fixtures/upgrade/build-release.js'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-upgrade-sources-'))
const settings = {stateDir: path.join(dir, 'state')}
afterAll(() => fs.rmSync(dir, {recursive: true, force: true}))

const declared = /SERVICE_VERSION = '([^']+)'/.exec(
  fs.readFileSync(path.join(ROOT, 'service/src/version.ts'), 'utf8'),
)![1]

describe('release sources', () => {
  it('a git ref: git archive of service/, compiled to JavaScript, placed, dependencies linked; its tarball stages to the same content', async () => {
    const git = await stageRelease(settings, 'HEAD')
    expect(git.info).toMatchObject({version: declared, sourceKind: 'git', source: 'HEAD'})
    const committed = execFileSync('git', ['-C', ROOT, 'ls-tree', '--name-only', 'HEAD', 'service/migrations/'], {
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
    expect(git.info.migrationsHead).toBe(/(\d+)_/.exec(path.basename(committed.at(-1)!))![1])
    const server = fs.readFileSync(path.join(git.stagingDir, 'service/src/server.js'), 'utf8')
    expect(server).toContain("from './app.js'")
    expect(JSON.parse(fs.readFileSync(path.join(git.stagingDir, 'package.json'), 'utf8')).type).toBe('module')

    const tgz = path.join(dir, 'release.tgz')
    execFileSync('tar', ['-czf', tgz, '-C', git.stagingDir, '.'])
    const fromTarball = await stageRelease(settings, tgz)
    expect(fromTarball.info.sha256).toBe(git.info.sha256)
    discardStaging(fromTarball)

    const placed = placeRelease(git)
    expect(placed).toEqual({dir: path.join(settings.stateDir, 'releases', declared), reused: false})
    expect(await installDependencies(placed.dir)).toMatchObject({mode: 'linked'})
    expect(fs.realpathSync(path.join(placed.dir, 'node_modules'))).toBe(
      fs.realpathSync(path.join(ROOT, 'node_modules')),
    )
    // the compiled service loads its dependencies (db.js imports pg) through the link
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `await import(${JSON.stringify(path.join(placed.dir, 'service/src/db.js'))}); const m = await import(${JSON.stringify(path.join(placed.dir, 'service/src/version.js'))}); console.log(m.SERVICE_VERSION)`,
      ],
      {encoding: 'utf8'},
    )
    expect(out.trim()).toBe(declared)
    // the same content again is reused, not copied over
    expect(placeRelease(await stageRelease(settings, 'HEAD'))).toEqual({dir: placed.dir, reused: true})
  }, 120_000)

  it('refuses what is not a version: a plain file, an unknown ref, a directory without a service', async () => {
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'x')
    await expect(stageRelease(settings, path.join(dir, 'notes.txt'))).rejects.toMatchObject({exitCode: 2})
    await expect(stageRelease(settings, 'no-such-ref-42')).rejects.toThrow(/not a directory, a tarball, nor a git ref/)
    fs.mkdirSync(path.join(dir, 'empty'))
    await expect(stageRelease(settings, path.join(dir, 'empty'))).rejects.toThrow(/holds no service\/migrations/)
    expect(fs.readdirSync(path.join(settings.stateDir, 'releases')).filter((n) => n.startsWith('.'))).toEqual([])
  })
})
