// The web UI's build: `npm run build` (scripts/build.mjs) runs it; output dist/web (stable: the
// service serves it at /, and the compose/k8s web image copies it). Settings the guide's way:
// VITE_APP_TITLE, VITE_API_URL, VITE_WS_URL from the environment or web/.env.production;
// /config.json overrides them at run time.
import {fileURLToPath} from 'node:url'

import {defineConfig} from 'vite'

const here = fileURLToPath(new URL('.', import.meta.url))
process.env.VITE_APP_TITLE ||= 'Charge Analysis System'

export default defineConfig({
  root: here,
  envDir: here,
  base: '/',
  publicDir: 'public',
  logLevel: 'warn',
  oxc: {jsx: {runtime: 'automatic', importSource: 'preact'}},
  resolve: {alias: {react: 'preact/compat', 'react-dom': 'preact/compat'}},
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    manifest: true,
    sourcemap: false,
    assetsDir: 'assets',
    reportCompressedSize: false,
  },
})
