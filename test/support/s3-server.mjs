#!/usr/bin/env node
// Runs s3rver in its own process, so that a test can kill it mid-upload.
//   node test/support/s3-server.mjs --dir DIR [--port 0] [--buckets a,b] [--exit-on-stdin-eof]
// Prints one JSON line on stdout once it listens: {"port":N,"address":"127.0.0.1"}.
// SIGTERM / SIGINT close the server and exit 0; SIGKILL is the "crash" a test wants.
import S3rver from 's3rver'
import {parseArgs} from 'node:util'

const {values} = parseArgs({
  options: {
    dir: {type: 'string'},
    port: {type: 'string', default: '0'},
    address: {type: 'string', default: '127.0.0.1'},
    buckets: {type: 'string', default: ''},
    'exit-on-stdin-eof': {type: 'boolean', default: false},
  },
})
if (!values.dir) {
  console.error('s3-server: --dir is required')
  process.exit(2)
}

const server = new S3rver({
  address: values.address,
  port: Number(values.port),
  directory: values.dir,
  silent: true,
  configureBuckets: values.buckets
    .split(',')
    .filter(Boolean)
    .map((name) => ({name})),
})
const {port, address} = await server.run()
process.stdout.write(`${JSON.stringify({port, address})}\n`)

let closing = false
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (closing) return
    closing = true
    // close() waits for open connections; don't let a stuck client keep us alive
    setTimeout(() => process.exit(0), 2000).unref()
    server.close().finally(() => process.exit(0))
  })
}
// --exit-on-stdin-eof: the parent closing our stdin pipe (or dying) ends us too
if (values['exit-on-stdin-eof']) {
  process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'))
  process.stdin.resume()
}
