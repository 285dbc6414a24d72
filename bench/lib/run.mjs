// Timed child processes for benchmarks. Each child runs in its own process group (detached) so an
// interrupt can kill a whole pipeline (bash + pg_dump + gzip); stderr is kept for error messages.
import {spawn} from 'node:child_process'
import {readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {track} from './cleanup.mjs'

const RSS_PRELOAD = pathToFileURL(join(import.meta.dirname, 'rss.mjs')).href

/**
 * Runs `cmd args` to completion; resolves {ms, stdout, stderr}; rejects on a non-zero exit with the
 * tail of stderr. opts: env, cwd, stdout ('pipe' | 'ignore'), uid, gid.
 */
export function timed(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      uid: opts.uid,
      gid: opts.gid,
      detached: true,
      stdio: ['ignore', opts.stdout ?? 'pipe', 'pipe'],
    })
    track(child)
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr = (stderr + d).slice(-16_384)
      if (opts.echoStderr) process.stderr.write(d)
    })
    child.once('error', reject)
    child.once('close', (code, signal) => {
      const ms = performance.now() - start
      if (code === 0) resolve({ms, stdout, stderr})
      else
        reject(
          new Error(
            `${[cmd, ...args].join(' ').slice(0, 300)} failed (${signal ?? `exit ${code}`}):\n${stderr.trim().slice(-3000)}`,
          ),
        )
    })
  })
}

/** A bash script with pipefail (a failing pg_dump in `pg_dump | gzip` fails the run). */
export function sh(script, opts = {}) {
  return timed('bash', ['-o', 'pipefail', '-e', '-c', script], opts)
}

/**
 * Runs `node --import rss.mjs entry args` and adds `peakRssKb`: that node process' own VmHWM.
 */
export async function timedNode(entry, args, opts = {}) {
  const rssFile = join(opts.scratch, `rss-${process.pid}-${Date.now()}.txt`)
  const env = {...(opts.env ?? process.env), CHARGE_OPS_BENCH_RSS_FILE: rssFile}
  try {
    const r = await timed(process.execPath, ['--import', RSS_PRELOAD, entry, ...args], {...opts, env})
    let peakRssKb
    try {
      peakRssKb = Number(readFileSync(rssFile, 'utf8').trim())
    } catch {}
    return {...r, peakRssKb}
  } finally {
    rmSync(rssFile, {force: true})
  }
}

/** `sync`: dirty pages of the previous step must not be flushed during the next measurement. */
export const syncDisks = () => timed('sync', [])

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
