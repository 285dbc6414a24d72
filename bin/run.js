#!/usr/bin/env node
// The AWS SDK warns about Node 20 on stderr when it loads; users' output must stay clean.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
const {execute} = await import('@oclif/core')
await execute({dir: import.meta.url})
