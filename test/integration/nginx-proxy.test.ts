/**
 * The nginx site charge-ops renders (templates/nginx/nginx.conf, guide §9.1) in front of the real
 * service: a real nginx serves the built UI's files with their CSP, proxies /api/ and /health,
 * redirects http → https, and carries the WebSocket upgrade of /ws so live status works through it.
 * Only the listen addresses are changed (free loopback ports instead of 80/443); the certificate
 * is a throw-away self-signed one.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import WebSocket from 'ws'

import {renderTemplateFile} from '../../src/install/template.js'
import {waitUntil} from '../support/index.js'
import {freePort} from '../support/ports.js'
import {ROOT, startServiceUnderTest, type ServiceUnderTest} from './service-harness.js'

let sut: ServiceUnderTest
let dir: string
let nginx: ChildProcess | undefined
let httpPort: number
let httpsPort: number

/** GET over https to the local nginx, trusting only its self-signed certificate. */
function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{status: number; headers: Record<string, string | string[] | undefined>; body: string}> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      `https://127.0.0.1:${httpsPort}${url}`,
      {ca: fs.readFileSync(path.join(dir, 'ssl', 'fullchain.pem')), headers: {host: 'localhost', ...headers}},
      (res) => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c.toString()))
        res.on('end', () => resolve({status: res.statusCode!, headers: res.headers, body}))
      },
    )
    req.on('error', reject)
  })
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-nginx-'))
  // nginx's workers run as an unprivileged user: the files it serves must be world-readable
  fs.chmodSync(dir, 0o755)
  const webRoot = path.join(dir, 'web')
  fs.mkdirSync(path.join(webRoot, 'assets'), {recursive: true})
  fs.writeFileSync(
    path.join(webRoot, 'index.html'),
    '<!doctype html><title>ui</title><script type="module" src="/assets/app-abc123.js"></script>',
  )
  fs.writeFileSync(path.join(webRoot, 'assets', 'app-abc123.js'), 'console.log(1)')
  sut = await startServiceUnderTest({name: 'nginx'})
  await sut.startApi()
  await sut.startWorker()

  fs.mkdirSync(path.join(dir, 'ssl'))
  const cert = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      path.join(dir, 'ssl', 'privkey.pem'),
      '-out',
      path.join(dir, 'ssl', 'fullchain.pem'),
    ],
    {encoding: 'utf8'},
  )
  expect(cert.status, cert.stderr).toBe(0)
  httpPort = await freePort()
  httpsPort = await freePort()
  const backend = new URL(sut.baseUrl)
  const site = renderTemplateFile('nginx/nginx.conf', {
    domain: 'localhost',
    sslDir: path.join(dir, 'ssl'),
    backendUpstream: `${backend.hostname}:${backend.port}`,
    frontendUpstream: 'unused:80',
    frontendRoot: webRoot,
  })
    .replace(/^\s*listen \[::\]:.*$/gm, '')
    .replace('listen 80 default_server;', `listen 127.0.0.1:${httpPort} default_server;`)
    .replace('listen 443 ssl http2;', `listen 127.0.0.1:${httpsPort} ssl http2;`)
  expect(site).not.toMatch(/listen (80|443)\b/)
  fs.writeFileSync(path.join(dir, 'site.conf'), site)
  const temp = (name: string) => `${name}_temp_path ${path.join(dir, 'tmp', name)};`
  fs.mkdirSync(path.join(dir, 'tmp'))
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    [
      `pid ${path.join(dir, 'nginx.pid')};`,
      `error_log ${path.join(dir, 'error.log')} warn;`,
      'worker_processes 1;',
      'events { worker_connections 64; }',
      `http { include /etc/nginx/mime.types; access_log off; ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join(' ')} include ${path.join(dir, 'site.conf')}; }`,
    ].join('\n'),
  )
  const check = spawnSync('nginx', ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')], {encoding: 'utf8'})
  expect(check.status, check.stderr).toBe(0)
  // setpriv --pdeathsig: nginx ends with this test process even when the runner is killed
  nginx = spawn(
    'setpriv',
    ['--pdeathsig', 'TERM', 'nginx', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    {stdio: ['ignore', 'ignore', 'pipe']},
  )
  await waitUntil(async () => (await get('/health').catch(() => ({status: 0}))).status === 200, {
    timeoutMs: 20_000,
    what: 'nginx in front of the service',
  })
}, 180_000)

afterAll(async () => {
  if (nginx?.exitCode === null) {
    const exited = new Promise((resolve) => nginx!.once('exit', resolve))
    nginx.kill('SIGQUIT')
    await exited
  }
  await sut?.stopAll()
  fs.rmSync(dir, {recursive: true, force: true})
})

describe('the rendered nginx site in front of the service', () => {
  it('serves the UI files with the CSP, proxies the API, redirects http to https', async () => {
    const page = await get('/sessions')
    expect(page.status).toBe(200)
    expect(page.body).toContain('<title>ui</title>')
    expect(page.headers['content-security-policy']).toContain("connect-src 'self' wss://localhost")
    expect(page.headers['cache-control']).toBe('no-cache')
    expect((await get('/assets/app-abc123.js')).headers['cache-control']).toContain('immutable')
    const sessions = await get('/api/v1/sessions', {authorization: `Bearer ${sut.token}`})
    expect(sessions.status).toBe(200)
    expect(JSON.parse(sessions.body)).toHaveProperty('sessions')
    const plain = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get(`http://127.0.0.1:${httpPort}/sessions`, {headers: {host: 'localhost'}}, resolve).on('error', reject),
    )
    plain.resume()
    expect(plain.statusCode).toBe(301)
    expect(plain.headers.location).toBe('https://localhost/sessions')
  })

  it('carries /ws: the socket authenticates and receives queued → running → done of an upload made through nginx', async () => {
    const socket = new WebSocket(`wss://127.0.0.1:${httpsPort}/ws`, {
      ca: fs.readFileSync(path.join(dir, 'ssl', 'fullchain.pem')),
      headers: {host: 'localhost'},
    })
    const messages: any[] = []
    socket.on('open', () => socket.send(JSON.stringify({type: 'auth', token: sut.token})))
    socket.on('message', (data) => messages.push(JSON.parse(String(data))))
    try {
      await waitUntil(async () => messages.some((m) => m.type === 'hello'), {
        timeoutMs: 10_000,
        what: 'hello through nginx',
      })
      const csv = fs.readFileSync(path.join(ROOT, 'service/sample/session-02-overheat.csv'))
      const upload = await new Promise<{status: number; body: any}>((resolve, reject) => {
        const req = https.request(
          `https://127.0.0.1:${httpsPort}/api/v1/uploads?filename=through-nginx.csv`,
          {
            method: 'POST',
            ca: fs.readFileSync(path.join(dir, 'ssl', 'fullchain.pem')),
            headers: {host: 'localhost', authorization: `Bearer ${sut.token}`, 'content-type': 'text/csv'},
          },
          (res) => {
            let body = ''
            res.on('data', (c: Buffer) => (body += c.toString()))
            res.on('end', () => resolve({status: res.statusCode!, body: JSON.parse(body)}))
          },
        )
        req.on('error', reject)
        req.end(csv)
      })
      expect(upload.status).toBe(202)
      const id = upload.body.analysisId
      await waitUntil(async () => messages.some((m) => m.analysisId === id && m.status === 'done'), {
        timeoutMs: 30_000,
        what: 'the done event through nginx',
      })
      expect(messages.filter((m) => m.analysisId === id).map((m) => m.status)).toEqual(['queued', 'running', 'done'])
    } finally {
      socket.close()
    }
  })
})
