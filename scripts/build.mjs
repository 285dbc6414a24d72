#!/usr/bin/env node
// Build: compile TypeScript, then regenerate oclif.manifest.json and the README command reference,
// so that the manifest used at start-up and the documented commands never lag the code.
// The manifest is regenerated even when tsc reports type errors (it still emits), so that one
// broken file does not hide every other command; the build still fails at the end.
import {execFileSync} from 'node:child_process'

process.env.OCLIF_SKIP_NEW_VERSION_CHECK = 'true'
const run = (cmd, args) => execFileSync(cmd, args, {stdio: 'inherit'})
let failed = false
try {
  run('npx', ['--no-install', 'tsc', '-p', 'tsconfig.build.json'])
} catch {
  failed = true
}
run('npx', ['--no-install', 'oclif', 'manifest'])
if (!process.argv.includes('--no-readme')) run('npx', ['--no-install', 'oclif', 'readme', '--no-aliases'])
if (failed) {
  console.error('build: TypeScript reported errors (see above)')
  process.exit(1)
}
