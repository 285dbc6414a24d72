#!/usr/bin/env -S node --
// `node --` ends Node's own options: Node 20 otherwise takes a `--env-file` anywhere on the command
// line as its own (charge-ops backup list --env-file x → "node: x: not found", exit 9).
// The AWS SDK warns about Node 20 on stderr when it loads; users' output must stay clean.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

const argv = process.argv.slice(2)
let handled = false

// `--version` is asked by scripts and health probes; answer it without loading oclif.
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v' || argv[0] === 'version')) {
  const {readFileSync} = await import('node:fs')
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  process.stdout.write(`${pkg.name}/${pkg.version} ${process.platform}-${process.arch} node-${process.version}\n`)
  handled = true
}

// PostgreSQL forks `wal push` (archive_command) for every WAL segment: the plain form skips oclif's
// start-up and runs the same code (dist/src/wal/hot-path.js explains which forms qualify).
if (!handled && argv[0] === 'wal' && (argv[1] === 'push' || argv[1] === 'fetch')) {
  const {parseHotInvocation, runHotInvocation} = await import('../dist/src/wal/hot-path.js')
  const invocation = parseHotInvocation(argv[1], argv.slice(2))
  if (invocation) {
    process.exitCode = await runHotInvocation(invocation)
    handled = true
  }
}

if (!handled) {
  // charge-ops runs its compiled dist/ only: with NODE_ENV=development or test (vitest's children)
  // oclif would otherwise look for the help class's .ts source beside it and fail to import it.
  globalThis.oclif = {...globalThis.oclif, enableAutoTranspile: false}
  const {execute} = await import('@oclif/core/execute')
  await execute({dir: import.meta.url})
}
