#!/usr/bin/env node
// Build: compile TypeScript, then regenerate oclif.manifest.json and the README command reference,
// so that the manifest used at start-up and the documented commands never lag the code.
import {execFileSync} from 'node:child_process'
import {rmSync} from 'node:fs'

process.env.OCLIF_SKIP_NEW_VERSION_CHECK = 'true'
const run = (cmd, args) => execFileSync(cmd, args, {stdio: 'inherit'})
rmSync('dist', {recursive: true, force: true})
run('npx', ['--no-install', 'tsc', '-p', 'tsconfig.build.json'])
run('npx', ['--no-install', 'oclif', 'manifest'])
run('npx', ['--no-install', 'oclif', 'readme', '--no-aliases'])
