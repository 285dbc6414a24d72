#!/usr/bin/env node
// Build: compile TypeScript, build the web UI (web/ → dist/web, Vite), then regenerate
// oclif.manifest.json, docs/exit-codes.md and the command reference (docs/commands/, one page per
// topic), so that the manifest used at start-up and the documented commands never lag the code. Prints the UI's first-screen JavaScript, gzipped,
// and fails above its budget (200 KB).
// The manifest is regenerated even when tsc reports type errors (it still emits), so that one
// broken file does not hide every other command; the build still fails at the end.
//   --no-readme   leave the command reference (docs/commands/) alone
//   --if-stale    do nothing when dist/ is newer than every source file (used by `npm test`)
import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {gzipSync} from 'node:zlib'

const stamp = 'dist/.build-stamp'

function newestSource(dirs) {
  let newest = 0
  const walk = (dir) => {
    for (const entry of readdirSync(dir, {withFileTypes: true})) {
      const full = join(dir, entry.name)
      if (entry.isDirectory()) walk(full)
      else if (/\.(ts|tsx|json|css|html|mjs)$/.test(entry.name)) newest = Math.max(newest, statSync(full).mtimeMs)
    }
  }
  for (const dir of dirs) if (existsSync(dir)) walk(dir)
  return Math.max(newest, statSync('package.json').mtimeMs, statSync('tsconfig.json').mtimeMs)
}

if (
  process.argv.includes('--if-stale') &&
  existsSync(stamp) &&
  statSync(stamp).mtimeMs >= newestSource(['commands', 'src', 'service/src', 'web/src', 'web/public']) &&
  existsSync('dist/web/index.html')
) {
  process.exit(0)
}

process.env.OCLIF_SKIP_NEW_VERSION_CHECK = 'true'
const run = (cmd, args) => execFileSync(cmd, args, {stdio: 'inherit'})
// The tools are run by this very node, not through npx: inside `npm exec --package=node@22` an npx
// call would resolve against that package and refuse; and it saves npx's own start-up.
const tsc = ['node_modules/typescript/bin/tsc']
const oclif = ['node_modules/oclif/bin/run.js']
const node = (args) => run(process.execPath, args)
let failed = false
try {
  node([...tsc, '-p', 'tsconfig.build.json'])
} catch {
  failed = true
}
try {
  buildWeb()
} catch (error) {
  console.error(`build: the web UI did not build: ${error.message}`)
  failed = true
}
// NODE_ENV=production for oclif's own tools: under NODE_ENV=test or development (vitest's children,
// the quick start's test) oclif looks for the TypeScript source, and Node 22 can load it natively, so
// the manifest recorded commands/*.ts paths and every command then failed to import its .js
// siblings (`sandbox up`: MODULE_NOT_FOUND src/cli/base-command.js). The manifest names dist/ only.
process.env.NODE_ENV = 'production'
node([...oclif, 'manifest'])
// docs/exit-codes.md is rendered from the registry in src/errors.ts: the table lives in one place
// (test/unit/error-codes.test.ts fails when the committed page lags it).
try {
  const {renderExitCodeDocs} = await import(new URL('../dist/src/errors.js', import.meta.url).href)
  writeFileSync('docs/exit-codes.md', renderExitCodeDocs())
} catch (error) {
  console.error(`build: docs/exit-codes.md not rendered: ${error.message}`)
  failed = true
}
// oclif lists the commands in directory-read order, which differs between file systems: sorted, a
// fresh clone's build leaves the committed manifest byte for byte as it was.
const manifest = JSON.parse(readFileSync('oclif.manifest.json', 'utf8'))
manifest.commands = Object.fromEntries(
  Object.entries(manifest.commands).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
)
writeFileSync('oclif.manifest.json', JSON.stringify(manifest, null, 2) + '\n')
if (!process.argv.includes('--no-readme')) commandReference()
if (failed) {
  console.error('build: TypeScript reported errors (see above)')
  process.exit(1)
}
writeFileSync(stamp, new Date().toISOString() + '\n')

/**
 * docs/commands/: `oclif readme --multi` writes a page per topic and the topic list into the index
 * page's <!-- commands --> block. Pages of topics that no longer exist are removed first; the
 * index's links are made relative to it (oclif writes them relative to the repository root).
 */
function commandReference() {
  const dir = 'docs/commands'
  const index = join(dir, 'README.md')
  for (const file of readdirSync(dir)) if (file.endsWith('.md') && file !== 'README.md') rmSync(join(dir, file))
  node([...oclif, 'readme', '--multi', '--no-aliases', '--output-dir', dir, '--readme-path', index])
  writeFileSync(index, readFileSync(index, 'utf8').replaceAll(`](${dir}/`, '](./'))
}

/**
 * web/ → dist/web (content-hashed assets; the location is stable: the service serves it, the
 * compose/k8s web image copies it). The first screen is the entry chunk and what it imports
 * statically; the analysis page (uPlot) is a lazy chunk and is not part of it.
 */
function buildWeb() {
  node(['node_modules/vite/bin/vite.js', 'build', '--config', 'web/vite.config.mjs'])
  const manifestFile = 'dist/web/.vite/manifest.json'
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'))
  const entry = Object.values(manifest).find((chunk) => chunk.isEntry)
  const files = new Set()
  const visit = (chunk) => {
    if (!chunk || files.has(chunk.file)) return
    files.add(chunk.file)
    for (const key of chunk.imports ?? []) visit(manifest[key])
  }
  visit(entry)
  const gz = [...files].reduce((n, file) => n + gzipSync(readFileSync(join('dist/web', file)), {level: 9}).length, 0)
  const all = Object.values(manifest).reduce(
    (n, chunk) => n + gzipSync(readFileSync(join('dist/web', chunk.file)), {level: 9}).length,
    0,
  )
  rmSync('dist/web/.vite', {recursive: true, force: true}) // not served: nothing reads it at run time
  const kb = (n) => (n / 1024).toFixed(1)
  console.log(
    `web: dist/web — first-screen JavaScript ${kb(gz)} KB gzipped (${files.size} files; budget 200 KB), all chunks ${kb(all)} KB`,
  )
  if (gz > 200 * 1024) throw new Error(`first-screen JavaScript is ${kb(gz)} KB gzipped, over the 200 KB budget`)
}
