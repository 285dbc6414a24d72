import {randomBytes} from 'node:crypto'
import {gunzipSync} from 'node:zlib'

import {describe, expect, it} from 'vitest'

import {decodeWal, encodeWal, readEnvelope, sha256Hex, WalIntegrityError} from '../../src/wal/codec.js'
import {archiveCommand, restoreCommand, shellQuote} from '../../src/wal/command-lines.js'

const NAME = '000000010000000000000003'
const data = Buffer.concat([randomBytes(4096), Buffer.alloc(60_000, 1)])

describe('stored WAL format', () => {
  it('round-trips with zstd and carries the checksum in a skippable frame', async () => {
    const {body, compression, envelope} = await encodeWal(data, NAME, 'zstd')
    expect(compression).toBe('zstd')
    expect(envelope).toEqual({sha256: sha256Hex(data), size: data.length, name: NAME})
    expect(readEnvelope(body)).toEqual(envelope)
    expect((await decodeWal(body, NAME)).equals(data)).toBe(true)
    expect(body.length).toBeLessThan(data.length / 4)
  })

  it('round-trips with gzip, readable by plain gunzip', async () => {
    const {body, envelope} = await encodeWal(data, NAME, 'gzip')
    expect(gunzipSync(body).equals(data)).toBe(true)
    expect(readEnvelope(body)).toEqual(envelope)
    expect((await decodeWal(body, NAME)).equals(data)).toBe(true)
  })

  it('detects corruption, truncation and a misplaced object', async () => {
    // Incompressible bytes: every flipped bit changes the output. (In the long run of ones of
    // `data`, a flip can turn deflate's "copy from 1 back" into "from 2 back", which decodes to
    // the very same bytes: harmless, and covered by the next test.)
    const random = randomBytes(64 * 1024)
    for (const compression of ['zstd', 'gzip'] as const) {
      const {body} = await encodeWal(random, NAME, compression)
      const flipped = Buffer.from(body)
      flipped[flipped.length - 20] ^= 0x55
      await expect(decodeWal(flipped, NAME)).rejects.toThrow(WalIntegrityError)
      await expect(decodeWal(body.subarray(0, body.length - 100), NAME)).rejects.toThrow(new RegExp(NAME))
      await expect(decodeWal(body, '000000010000000000000004')).rejects.toThrow(
        /holds 000000010000000000000003 instead/,
      )
    }
    await expect(decodeWal(Buffer.from('hello'), NAME)).rejects.toThrow(/no charge-ops checksum header/)
  })

  it('never returns bytes other than the archived ones, wherever a stored byte is damaged', async () => {
    for (const compression of ['zstd', 'gzip'] as const) {
      const {body} = await encodeWal(data, NAME, compression)
      let rejected = 0
      for (let at = 0; at < body.length; at += 7) {
        const damaged = Buffer.from(body)
        damaged[at] ^= 0x55
        const out = await decodeWal(damaged, NAME).catch((error: unknown) => {
          expect(error).toBeInstanceOf(WalIntegrityError)
          return undefined
        })
        if (out === undefined) rejected++
        else expect(out.equals(data), `${compression}: byte ${at} damaged, different bytes returned`).toBe(true)
      }
      expect(rejected).toBeGreaterThan(0)
    }
  })
})

describe('archive_command / restore_command lines', () => {
  it('are self-contained and quote for /bin/sh', () => {
    const options = {
      repository: "/srv/my backups/it's",
      stack: 'prod',
      node: '/usr/bin/node',
      entry: '/opt/charge-ops/bin/run.js',
    }
    expect(archiveCommand(options)).toBe(
      `/usr/bin/node /opt/charge-ops/bin/run.js wal push %p --repo '/srv/my backups/it'\\''s' --stack prod`,
    )
    expect(restoreCommand({...options, repository: 's3://b/p', awsEnvFile: '/etc/charge-ops/s3.env'})).toBe(
      '/usr/bin/node /opt/charge-ops/bin/run.js wal fetch %f %p --repo s3://b/p --stack prod --aws-env-file /etc/charge-ops/s3.env',
    )
    expect(shellQuote('a;b')).toBe("'a;b'")
  })
})
