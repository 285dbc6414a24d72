import {describe, expect, it} from 'vitest'

import {parseHotInvocation} from '../../src/wal/hot-path.js'

describe('wal push / fetch hot path (which command lines skip oclif)', () => {
  it('takes the plain archive_command and restore_command forms', () => {
    expect(parseHotInvocation('push', ['pg_wal/000000010000000000000001', '--repo', '/r', '--stack', 's'])).toEqual({
      verb: 'push',
      positional: ['pg_wal/000000010000000000000001'],
      flags: {repo: '/r', stack: 's'},
    })
    expect(
      parseHotInvocation('push', [
        'p',
        '--repo=s3://b/x',
        '--stack=s',
        '--aws-env-file',
        '/etc/s3.env',
        '--compression',
        'gzip',
      ])?.flags,
    ).toEqual({
      repo: 's3://b/x',
      stack: 's',
      'aws-env-file': '/etc/s3.env',
      compression: 'gzip',
    })
    expect(
      parseHotInvocation('fetch', ['000000010000000000000001', 'pg_wal/RECOVERYXLOG', '--repo', '/r', '--stack', 's'])
        ?.positional,
    ).toEqual(['000000010000000000000001', 'pg_wal/RECOVERYXLOG'])
  })

  it('takes the forms that read the repository and stack from charge-ops.yaml (no oclif either)', () => {
    // a hand-written archive_command without --stack, and the compose image's --config line
    expect(parseHotInvocation('push', ['pg_wal/000000010000000000000001', '--repo', '/r'])?.flags).toEqual({repo: '/r'})
    expect(parseHotInvocation('push', ['%p', '--config', '/etc/charge-ops/charge-ops.yaml'])?.flags).toEqual({
      config: '/etc/charge-ops/charge-ops.yaml',
    })
    expect(
      parseHotInvocation('push', [
        'p',
        '--config=/c.yaml',
        '--env-file',
        '/e',
        '--quiet',
        '--async',
        '--process-max',
        '4',
      ])?.flags,
    ).toEqual({config: '/c.yaml', 'env-file': '/e', quiet: 'true', async: 'true', 'process-max': '4'})
    expect(
      parseHotInvocation('fetch', [
        '000000010000000000000001',
        'pg_wal/RECOVERYXLOG',
        '--config',
        '/c.yaml',
        '--prefetch',
        '8',
      ])?.flags,
    ).toEqual({config: '/c.yaml', prefetch: '8'})
    expect(parseHotInvocation('push', ['p'])?.positional).toEqual(['p'])
  })

  it.each([
    ['help', ['p', '--repo', '/r', '--stack', 's', '--help']],
    ['json', ['p', '--repo', '/r', '--stack', 's', '--json']],
    ['short flag', ['p', '--repo', '/r', '--stack', 's', '-q']],
    ['wal-g engine', ['p', '--repo', '/r', '--stack', 's', '--engine', 'wal-g']],
    ['verbose', ['p', '--repo', '/r', '--stack', 's', '--verbose']],
    ['quiet with a value', ['p', '--repo', '/r', '--quiet=yes']],
    ['bad compression', ['p', '--repo', '/r', '--stack', 's', '--compression', 'lz4']],
    ['missing path', ['--repo', '/r', '--stack', 's']],
    ['two paths', ['a', 'b', '--repo', '/r', '--stack', 's']],
    ['flag without value', ['p', '--repo', '/r', '--stack']],
  ])('leaves %s to oclif', (_name, argv) => {
    expect(parseHotInvocation('push', argv)).toBeUndefined()
  })

  it("leaves numbers outside the flags' bounds to oclif (which refuses them: exit 2)", () => {
    expect(
      parseHotInvocation('push', ['p', '--repo', '/r', '--stack', 's', '--async', '--process-max', '64'])?.flags[
        'process-max'
      ],
    ).toBe('64')
    expect(
      parseHotInvocation('push', ['p', '--repo', '/r', '--stack', 's', '--async', '--process-max', '0']),
    ).toBeUndefined()
    expect(
      parseHotInvocation('push', ['p', '--repo', '/r', '--stack', 's', '--async', '--process-max', '65']),
    ).toBeUndefined()
    expect(
      parseHotInvocation('fetch', ['n', 'd', '--repo', '/r', '--stack', 's', '--prefetch', '256'])?.flags.prefetch,
    ).toBe('256')
    expect(parseHotInvocation('fetch', ['n', 'd', '--repo', '/r', '--stack', 's', '--prefetch', '257'])).toBeUndefined()
  })

  it('knows only push and fetch', () => {
    expect(parseHotInvocation('check', ['--repo', '/r', '--stack', 's'])).toBeUndefined()
  })
})
