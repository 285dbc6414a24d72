/**
 * The PostgreSQL server's own programs (pg_ctl, pg_controldata, postgres …): where they are on
 * this host (CHARGE_OPS_PG_BINDIR, else Debian's /usr/lib/postgresql/<major>/bin, newest first,
 * else PATH), and pg_control read through pg_controldata.
 */
import {existsSync, readdirSync} from 'node:fs'
import {join} from 'node:path'

export function serverBinary(name: string, major?: number): string {
  const candidates: string[] = []
  if (process.env.CHARGE_OPS_PG_BINDIR) candidates.push(join(process.env.CHARGE_OPS_PG_BINDIR, name))
  if (major) candidates.push(`/usr/lib/postgresql/${major}/bin/${name}`)
  try {
    const majors = readdirSync('/usr/lib/postgresql')
      .filter((d) => /^\d+$/.test(d))
      .sort((a, b) => Number(b) - Number(a))
    for (const m of majors) candidates.push(`/usr/lib/postgresql/${m}/bin/${name}`)
  } catch {
    // not a Debian layout: fall back to PATH
  }
  return candidates.find((c) => existsSync(c)) ?? name
}

export async function controlData(dataDir: string, major?: number): Promise<Record<string, string>> {
  const {run} = await import('../core/proc/exec.js')
  const {stdout} = await run(serverBinary('pg_controldata', major), [dataDir], {
    env: {LC_ALL: 'C'},
    purpose: 'reading pg_control',
  })
  const out: Record<string, string> = {}
  for (const line of stdout.split('\n')) {
    const i = line.indexOf(':')
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim()
  }
  return out
}
