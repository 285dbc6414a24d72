/**
 * What `init --target compose` prepares beyond the planned files: a self-signed certificate for
 * nginx when none is there (nginx does not start without one; replace it with a real one — see
 * docs/init.md), and the bind-mounted data folders owned by the uid that writes them in its
 * container (applied when init runs as root, as on a server).
 */
import {chownSync, existsSync, mkdirSync, readFileSync} from 'node:fs'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {run} from '../core/proc/exec.js'
import type {PlannedFile} from '../core/fs/file-plan.js'
import {COMPOSE_DIRS, POSTGRES_CONTAINER_OWNER} from './plan.js'

const CERT = 'nginx/ssl/fullchain.pem'
const KEY = 'nginx/ssl/privkey.pem'

/** The certificate files: the ones on disk when both exist (a rerun keeps them), else a fresh self-signed pair. */
export async function selfSignedCertificate(dir: string, domain: string): Promise<PlannedFile[]> {
  if (existsSync(join(dir, CERT)) && existsSync(join(dir, KEY))) {
    return [
      {path: CERT, content: readFileSync(join(dir, CERT), 'utf8'), mode: 0o644},
      {path: KEY, content: readFileSync(join(dir, KEY), 'utf8'), mode: 0o600},
    ]
  }
  const temp = await mkdtemp(join(tmpdir(), 'charge-ops-cert-'))
  try {
    await run(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-sha256',
        '-days',
        '825',
        '-subj',
        `/CN=${domain}`,
        '-addext',
        `subjectAltName=DNS:${domain}`,
        '-keyout',
        join(temp, 'key.pem'),
        '-out',
        join(temp, 'cert.pem'),
      ],
      {purpose: 'make a self-signed certificate for nginx'},
    )
    return [
      {path: CERT, content: await readFile(join(temp, 'cert.pem'), 'utf8'), mode: 0o644},
      {path: KEY, content: await readFile(join(temp, 'key.pem'), 'utf8'), mode: 0o600},
    ]
  } finally {
    await rm(temp, {recursive: true, force: true})
  }
}

function ensureDir(path: string, owner?: {uid: number; gid: number}): void {
  mkdirSync(path, {recursive: true})
  if (owner && process.getuid?.() === 0) chownSync(path, owner.uid, owner.gid)
}

/**
 * The data folders the containers write (uploads: the service's uid, Chroma: its own uid, the
 * state folder with the maintenance flag) and, for a local repository, the repository owned by
 * the postgres container's uid (archive_command writes wal/ and reads cluster.json as it). Idempotent.
 */
export function prepareComposeFolders(dir: string, repository: string, stack: string): void {
  for (const entry of Object.values(COMPOSE_DIRS)) ensureDir(join(dir, entry.path), entry.owner)
  if (repository.startsWith('/')) {
    // The whole repository belongs to the postgres image's uid: archive_command runs as it and reads
    // <repo>/<stack>/cluster.json, and charge-ops run as root (on the host, in the ops container)
    // gives what it writes the repository root's owner — so every file stays readable to the archiver.
    ensureDir(repository, POSTGRES_CONTAINER_OWNER)
    ensureDir(join(repository, stack), POSTGRES_CONTAINER_OWNER)
    ensureDir(join(repository, stack, 'wal'), POSTGRES_CONTAINER_OWNER)
  }
}
