/**
 * The nginx template's part for the web UI (guide §9.1): index.html for the UI's paths and never
 * cached, hashed assets cached for a year, and the same Content-Security-Policy the service sends
 * at / (service/src/web.ts) — only connect-src names the domain's wss: instead of the Host's.
 */
import {describe, expect, it} from 'vitest'

import {renderTemplateFile} from '../../src/install/template.js'
import {contentSecurityPolicy} from '../../service/src/web.js'

const render = (frontendRoot: string) =>
  renderTemplateFile('nginx/nginx.conf', {
    domain: 'charge.example.com',
    sslDir: '/etc/nginx/ssl',
    backendUpstream: 'backend:8000',
    frontendUpstream: 'frontend:80',
    frontendRoot,
  })

const directives = (csp: string) =>
  csp
    .split(';')
    .map((d) => d.trim())
    .filter((d) => !d.startsWith('connect-src'))

describe('nginx template for the web UI', () => {
  it('serves the UI from files (local target): try_files → index.html, no-cache pages, immutable assets', () => {
    const conf = render('/var/www/charge-analysis')
    const root = conf.slice(conf.lastIndexOf('    location / {'))
    expect(root).toContain('try_files $uri $uri/ /index.html;')
    expect(root).toContain('add_header Cache-Control "no-cache" always;')
    const assets = conf.slice(conf.indexOf('location /assets/ {'), conf.lastIndexOf('    location / {'))
    expect(assets).toContain('add_header Cache-Control "public, max-age=31536000, immutable" always;')
    expect(assets).toContain('try_files $uri =404;')
    expect(conf).not.toContain('charge_frontend')
  })

  it('proxies to the web image (compose, k8s) and still sends the CSP', () => {
    const conf = render('')
    expect(conf).toContain('proxy_pass http://charge_frontend;')
    expect(conf).not.toContain('try_files')
    expect(conf).not.toContain('location /assets/')
    expect(conf).toMatch(/add_header Content-Security-Policy ".*" always;/)
  })

  it('has the CSP the service sends, with the domain’s wss: for /ws', () => {
    for (const conf of [render(''), render('/var/www/charge-analysis')]) {
      const policies = [...conf.matchAll(/add_header Content-Security-Policy "([^"]+)" always;/g)].map((m) => m[1]!)
      expect(policies.length).toBeGreaterThan(0)
      for (const csp of policies) {
        expect(directives(csp)).toEqual(directives(contentSecurityPolicy()))
        expect(csp).toContain("connect-src 'self' wss://charge.example.com")
        expect(csp).not.toMatch(/unsafe-(inline|eval)/)
      }
    }
  })

  it('proxies /ws (and /ws/, the guide’s form) with the Upgrade headers', () => {
    const conf = render('')
    const ws = conf.slice(conf.indexOf('location /ws {'))
    expect(ws).toContain('proxy_set_header Upgrade $http_upgrade;')
    expect(ws).toContain('proxy_set_header Connection $connection_upgrade;')
  })
})
