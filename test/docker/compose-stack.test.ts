/**
 * The compose deployment end to end, on real containers (issue 13), in the order a user goes:
 * `init --target compose` with defaults → `images build` → `docker compose up -d --wait` → from the
 * host: `doctor` all OK and `migrate status` current → the sample sessions uploaded through nginx
 * (HTTPS, the self-signed certificate init made, verified as the CA) and analysed by the worker →
 * `backup all` from the host and as `docker compose run --rm ops` → the nightly
 * `backup verify latest --restore-drill` as generated.
 *
 * The engine is a private dockerd (test/support/docker.ts): its data root is a cache kept between
 * runs, so a second run finds the base and built images and rebuilds nothing that has not changed.
 * When the daemon cannot start, the test fails with its log; it is never skipped.
 * Budget: the whole file within 15 minutes on 2 cores with a warm cache.
 */
import {readFileSync, readdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync} from 'node:fs';
import https from 'node:https';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';

import {afterAll, beforeAll, describe, expect, it} from 'vitest';

import {BASE_IMAGES, startDocker, type DockerEngine} from '../support/docker.js';
import {freePort} from '../support/ports.js';
import {cleanEnv, runUnchecked, type RunResult} from '../support/process.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin', 'run.js');
const DOMAIN = 'charge.example.com';
const MINUTE = 60_000;

let engine: DockerEngine;
let dir: string;
let env: NodeJS.ProcessEnv;
let ports: Record<string, number>;
const timings: Record<string, number> = {};

async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await fn();
  } finally {
    timings[name] = Math.round((Date.now() - started) / 100) / 10;
  }
}

const cli = (args: string[], timeoutMs = 3 * MINUTE) => runUnchecked(process.execPath, [BIN, ...args], {cwd: dir, env, timeoutMs});
const compose = (args: string[], timeoutMs = 5 * MINUTE) => runUnchecked('docker', ['compose', ...args], {cwd: dir, env, timeoutMs});
const ok = (r: RunResult, what: string) => expect(r.code, `${what}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`).toBe(0);

/** An HTTPS request to nginx, verifying its certificate against the one init made (as its own CA). */
function viaNginx(method: string, path: string, token: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<{status: number; json: any}> {
  const ca = readFileSync(join(dir, 'nginx', 'ssl', 'fullchain.pem'));
  return new Promise((resolvePromise, reject) => {
    const req = https.request(
      {host: '127.0.0.1', port: ports.https, servername: DOMAIN, ca, method, path, headers: {host: DOMAIN, authorization: `Bearer ${token}`, ...headers}, timeout: 30_000},
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => {
          let json: unknown = text;
          try {
            json = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolvePromise({status: res.statusCode ?? 0, json});
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  engine = await timed('engine', () => startDocker());
  dir = mkdtempSync(join(tmpdir(), 'charge-ops-compose-'));
  chmodSync(dir, 0o755);
  ports = {postgres: await freePort(), redis: await freePort(), chroma: await freePort(), backend: await freePort(), http: await freePort(), https: await freePort()};
  // the project name is the stack: unique per run so that a left-over project cannot collide
  const stack = `charge-e2e-${process.pid}`;
  writeFileSync(join(dir, 'answers.yaml'), `target: compose\ndomain: ${DOMAIN}\nstack: ${stack}\ncompose:\n  ports: ${JSON.stringify(ports)}\n`);
  env = cleanEnv({...engine.env, CI: 'true', PATH: process.env.PATH ?? ''});
}, 30 * MINUTE);

afterAll(async () => {
  if (dir && engine) await compose(['--profile', 'ops', 'down', '--volumes', '--remove-orphans', '--timeout', '10'], 3 * MINUTE).catch(() => undefined);
  await engine?.stop();
  if (dir) rmSync(dir, {recursive: true, force: true});
  process.stderr.write(`compose e2e timings (s): ${JSON.stringify({...engine?.timings, ...timings})}\n`);
}, 5 * MINUTE);

describe('compose: init → images → up → operate from the host and from the ops container', () => {
  it('init with defaults writes a deployment; images build makes the five images', async () => {
    const init = await cli(['init', '--non-interactive', '--answers', 'answers.yaml', '--dir', dir, '--yes', '--json']);
    ok(init, 'init');
    const build = await timed('imagesBuild', () => cli(['images', 'build', '--base', BASE_IMAGES.bookworm, '--trixie-base', BASE_IMAGES.trixie, '--json'], 25 * MINUTE));
    ok(build, 'images build');
    const result = JSON.parse(build.stdout) as {images: Array<{name: string; ref: string; built: boolean}>};
    expect(result.images.map((i) => i.name).sort()).toEqual(['chroma', 'nginx', 'postgres', 'redis', 'service']);
    timings.imagesBuilt = result.images.filter((i) => i.built).length;
    // a second build right away changes nothing: the cache that makes warm runs fast
    const again = await cli(['images', 'build', '--base', BASE_IMAGES.bookworm, '--trixie-base', BASE_IMAGES.trixie, '--json'], 5 * MINUTE);
    ok(again, 'images build (again)');
    expect((JSON.parse(again.stdout) as typeof result).images.filter((i) => i.built).map((i) => i.name), again.stderr).toEqual([]);
  }, 30 * MINUTE);

  it('docker compose up -d --wait brings every service up healthy, with no edit', async () => {
    const up = await timed('composeUp', () => compose(['up', '-d', '--wait', '--wait-timeout', '240']));
    if (up.code !== 0) {
      const logs = await compose(['logs', '--no-color', '--tail', '40']);
      expect.fail(`docker compose up failed:\n${up.stderr.slice(-3000)}\n--- logs\n${logs.stdout.slice(-6000)}`);
    }
  }, 10 * MINUTE);

  it('from the host: doctor is all OK (containers included) and migrate status is current', async () => {
    const doctor = await cli(['doctor', '--json']);
    ok(doctor, 'doctor');
    const report = JSON.parse(doctor.stdout) as {status: string; checks: Array<{id: string; status: string; labels?: Record<string, string>}>};
    expect(report.status).toBe('ok');
    expect(report.checks.filter((r) => r.status !== 'ok')).toEqual([]);
    const services = report.checks.filter((r) => r.id === 'containers.state').map((r) => r.labels?.service).sort();
    expect(services).toEqual(['backend', 'chroma', 'migrate', 'nginx', 'postgres', 'redis', 'worker']);
    ok(await cli(['migrate', 'status', '--exit-code']), 'migrate status');
  }, 5 * MINUTE);

  it('the sample sessions go through nginx (HTTPS) and the worker analyses each', async () => {
    const token = (await cli(['service', 'token'])).stdout.trim();
    expect(token).toMatch(/^ey/);
    // the knowledge base first, so that findings link passages (vectors in Chroma)
    const knowledgeDir = join(ROOT, 'service', 'sample', 'knowledge');
    const documents = readdirSync(knowledgeDir).map((f) => {
      const text = readFileSync(join(knowledgeDir, f), 'utf8');
      return {title: /^#\s+(.+)$/m.exec(text)?.[1] ?? f, text, source: f};
    });
    const kb = await viaNginx('POST', '/api/v1/knowledge', token, JSON.stringify({documents}), {'content-type': 'application/json'});
    expect(kb.status, JSON.stringify(kb.json)).toBeLessThan(300);
    const sampleDir = join(ROOT, 'service', 'sample');
    const ids: string[] = [];
    for (const file of readdirSync(sampleDir).filter((f) => f.endsWith('.csv')).sort()) {
      const res = await viaNginx('POST', `/api/v1/uploads?filename=${file}`, token, readFileSync(join(sampleDir, file)), {'content-type': 'text/csv'});
      expect(res.status, JSON.stringify(res.json)).toBe(202);
      ids.push(res.json.analysisId);
    }
    expect(ids).toHaveLength(5);
    const deadline = Date.now() + 3 * MINUTE;
    for (const id of ids) {
      for (;;) {
        const res = await viaNginx('GET', `/api/v1/analyses/${id}`, token);
        expect(res.status).toBe(200);
        if (res.json.status === 'done') break;
        expect(res.json.status, JSON.stringify(res.json)).not.toBe('failed');
        if (Date.now() > deadline) expect.fail(`analysis ${id} still ${res.json.status}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    // the uploads are on the host, in the folder charge-ops.yaml names
    expect(readdirSync(join(dir, 'data', 'uploads'), {recursive: true}).filter((f) => String(f).endsWith('.csv'))).toHaveLength(5);
  }, 5 * MINUTE);

  it('backup all from the host and as `docker compose run --rm ops`; the generated restore drill passes', async () => {
    const host = await timed('backupHost', () => cli(['backup', 'all', '--json']));
    ok(host, 'backup all (host)');
    const ops = await timed('backupOps', () => compose(['run', '--rm', 'ops', 'backup', 'all', '--json']));
    ok(ops, 'docker compose run --rm ops backup all');
    const list = await cli(['backup', 'list', '--json']);
    ok(list, 'backup list');
    const backups = JSON.parse(list.stdout) as Array<{kind: string; complete?: boolean}> | {backups: Array<{kind: string}>};
    const rows = Array.isArray(backups) ? backups : backups.backups;
    expect(rows.filter((b) => b.kind === 'all').length).toBeGreaterThanOrEqual(2);
    // the nightly verify job's command as charge-ops.yaml's schedule writes it
    const yaml = readFileSync(join(dir, 'charge-ops.yaml'), 'utf8');
    const verifyCommand = /verify:\n\s+cron: .+\n\s+command: charge-ops (.+)\n/.exec(yaml)?.[1];
    expect(verifyCommand).toBe('backup verify latest --restore-drill');
    const drill = await timed('restoreDrill', () => cli([...verifyCommand!.split(' '), '--json']));
    ok(drill, 'backup verify latest --restore-drill');
  }, 10 * MINUTE);
});
