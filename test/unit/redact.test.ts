import {afterEach, describe, expect, it} from 'vitest'

import {clearRegisteredSecrets, MASK, redact, redactValue, registerSecret} from '../../src/output/redact.js'

describe('redact', () => {
  afterEach(() => clearRegisteredSecrets())

  it.each([
    ['postgresql://charge_user:s3cr3t-pw@db:5432/charge', 'postgresql://charge_user:******@db:5432/charge'],
    ['redis://:hunter22@redis:6379/0', 'redis://:******@redis:6379/0'],
    ['SECRET_KEY=abcdefghijklmnop', 'SECRET_KEY=******'],
    ['OPENAI_API_KEY: "sk-live-123456"', 'OPENAI_API_KEY: ******'],
    ['requirepass verysecret', 'requirepass ******'],
    ['AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG', 'AWS_SECRET_ACCESS_KEY=******'],
    ['key AKIAIOSFODNN7EXAMPLE used', 'key ****** used'],
    ['host=db password=pw123 sslmode=require', 'host=db password=****** sslmode=require'],
    ['postgresql://u@h/db?password=abc&sslmode=require', 'postgresql://u@h/db?password=******&sslmode=require'],
  ])('masks %s', (input, expected) => {
    expect(redact(input)).toBe(expected)
  })

  it('leaves text without secrets alone', () => {
    const text = 'backup 20261128T020000Z-db-ab12 complete: 201 MiB in 8.1s'
    expect(redact(text)).toBe(text)
  })

  it('masks registered secret values wherever they appear, URL-encoded too', () => {
    registerSecret('p@ss w0rd!')
    expect(redact('failed for p@ss w0rd! and p%40ss%20w0rd!')).toBe(`failed for ${MASK} and ${MASK}`)
  })

  it('deep-redacts JSON values by key name and content', () => {
    const out = redactValue({
      DATABASE_URL: 'postgresql://u:pw@h/db',
      nested: {SECRET_KEY: 'x'.repeat(40), port: 5432},
      list: ['redis://:pw@r:6379'],
    })
    expect(out).toEqual({
      DATABASE_URL: 'postgresql://u:******@h/db',
      nested: {SECRET_KEY: MASK, port: 5432},
      list: ['redis://:******@r:6379'],
    })
  })
})
