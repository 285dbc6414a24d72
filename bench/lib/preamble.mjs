// What every bench script starts with (it was copied into each): its numeric options, where the
// checkout and its CLI entry are, and a progress line on stderr (stdout is left to the results).
import {join, resolve} from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../..')
/** bin/run.js of this checkout: the CLI a user runs (`npm run build` first) */
export const ENTRY = join(ROOT, 'bin/run.js')
/** `--name N` from the command line as a number; `fallback` when the option is not given */
export const numberArg = (name, fallback) =>
  process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback
export const log = (line) => process.stderr.write(`${line}\n`)
