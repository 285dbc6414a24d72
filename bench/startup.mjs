#!/usr/bin/env node
// Start-up budget (issue 2): `charge-ops --version` and `charge-ops --help` within 3× the wall time
// of `node -e 0`, measured side by side. The three commands run interleaved N times (the machines
// are shared and noisy, so each round measures all three under the same load); medians are compared.
// Usage: node bench/startup.mjs [--runs 15] [--max-ratio 3] [--json]
import {spawnSync} from 'node:child_process'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = join(root, 'bin', 'run.js')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}
const runs = arg('--runs', 15)
const maxRatio = arg('--max-ratio', 3)
const json = process.argv.includes('--json')

const commands = {
  'node -e 0': [process.execPath, ['-e', '0']],
  'charge-ops --version': [process.execPath, [bin, '--version']],
  'charge-ops --help': [process.execPath, [bin, '--help']],
}
const env = {...process.env, CI: 'true', NO_COLOR: '1'}

function time([cmd, args]) {
  const start = process.hrtime.bigint()
  const r = spawnSync(cmd, args, {env, stdio: ['ignore', 'pipe', 'pipe'], cwd: root})
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  if (r.status !== 0) {
    process.stderr.write(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stderr}`)
    process.exit(2)
  }
  return ms
}

const samples = Object.fromEntries(Object.keys(commands).map((k) => [k, []]))
for (const name of Object.keys(commands)) time(commands[name]) // warm the file cache
for (let i = 0; i < runs; i++) for (const [name, command] of Object.entries(commands)) samples[name].push(time(command))

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const base = median(samples['node -e 0'])
const rows = Object.keys(commands).map((name) => ({
  name,
  medianMs: Math.round(median(samples[name]) * 10) / 10,
  ratio: Math.round((median(samples[name]) / base) * 100) / 100,
}))
const failed = rows.filter((r) => r.name !== 'node -e 0' && r.ratio > maxRatio)

if (json)
  process.stdout.write(
    JSON.stringify({runs, maxRatio, node: process.version, rows, ok: failed.length === 0}, null, 2) + '\n',
  )
else {
  process.stdout.write(`start-up, ${runs} interleaved runs, Node ${process.version} (budget: ${maxRatio}× node -e 0)\n`)
  for (const r of rows)
    process.stdout.write(
      `  ${r.name.padEnd(22)} median ${String(r.medianMs).padStart(7)} ms  ${r.name === 'node -e 0' ? 'baseline' : `${r.ratio}×`}\n`,
    )
  process.stdout.write(failed.length === 0 ? 'ok\n' : `over budget: ${failed.map((r) => r.name).join(', ')}\n`)
}
process.exit(failed.length === 0 ? 0 : 1)
