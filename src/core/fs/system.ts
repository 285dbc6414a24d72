/** Host facts: free disk (statfs), memory limit and availability (cgroup v2 / v1, else /proc/meminfo). */
import {readFile, statfs} from 'node:fs/promises'
import {dirname} from 'node:path'

export interface DiskUsage {
  path: string
  /** the path statfs was run on (the nearest existing ancestor) */
  measuredAt: string
  totalBytes: number
  freeBytes: number
  usedBytes: number
  freePct: number
}

/** statfs on the path, or its nearest existing ancestor (a repository dir not yet created). */
export async function diskUsage(path: string): Promise<DiskUsage> {
  let p = path
  for (;;) {
    try {
      const s = await statfs(p)
      const total = s.blocks * s.bsize
      const free = s.bavail * s.bsize
      return {
        path,
        measuredAt: p,
        totalBytes: total,
        freeBytes: free,
        usedBytes: total - s.bfree * s.bsize,
        freePct: total > 0 ? (free / total) * 100 : 0,
      }
    } catch (error) {
      const parent = dirname(p)
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || parent === p) throw error
      p = parent
    }
  }
}

export interface MemoryInfo {
  /** the cgroup limit when there is one, else the host's MemTotal */
  limitBytes: number
  source: 'cgroup v2' | 'cgroup v1' | 'host'
  usedBytes?: number
  availableBytes?: number
}

async function readNumber(path: string): Promise<number | undefined> {
  try {
    const text = (await readFile(path, 'utf8')).trim()
    if (text === 'max') return undefined
    const n = Number(text)
    return Number.isFinite(n) ? n : undefined
  } catch {
    return undefined
  }
}

export async function memoryInfo(root = '/'): Promise<MemoryInfo> {
  const meminfo = await readFile(`${root}proc/meminfo`, 'utf8').catch(() => '')
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(meminfo)
    return m ? Number(m[1]) * 1024 : undefined
  }
  const hostTotal = field('MemTotal') ?? 0
  const hostAvailable = field('MemAvailable')
  const v2 = await readNumber(`${root}sys/fs/cgroup/memory.max`)
  // a "limit" at or above the host's memory is no limit
  if (v2 !== undefined && (hostTotal === 0 || v2 < hostTotal)) {
    const used = await readNumber(`${root}sys/fs/cgroup/memory.current`)
    return {
      limitBytes: v2,
      source: 'cgroup v2',
      usedBytes: used,
      availableBytes: used === undefined ? undefined : Math.max(0, v2 - used),
    }
  }
  const v1 = await readNumber(`${root}sys/fs/cgroup/memory/memory.limit_in_bytes`)
  if (v1 !== undefined && (hostTotal === 0 || v1 < hostTotal)) {
    const used = await readNumber(`${root}sys/fs/cgroup/memory/memory.usage_in_bytes`)
    return {
      limitBytes: v1,
      source: 'cgroup v1',
      usedBytes: used,
      availableBytes: used === undefined ? undefined : Math.max(0, v1 - used),
    }
  }
  return {
    limitBytes: hostTotal,
    source: 'host',
    availableBytes: hostAvailable,
    usedBytes: hostAvailable === undefined ? undefined : hostTotal - hostAvailable,
  }
}

export interface WalkedFile {
  /** path relative to the root, `/`-separated */
  rel: string
  size: number
  mtimeMs: number
}

/**
 * Visits every regular file under root (symlinks not followed). `skipName` prunes files and
 * directories by name at any depth; subdirectories that cannot be read are passed over (the root
 * itself must be readable).
 */
export async function walkFiles(
  root: string,
  visit: (file: WalkedFile) => void,
  options: {skipName?: (name: string) => boolean} = {},
): Promise<void> {
  const {readdir, lstat} = await import('node:fs/promises')
  const {join, relative, sep} = await import('node:path')
  const stack = [root]
  while (stack.length > 0) {
    const d = stack.pop()!
    let entries
    try {
      entries = await readdir(d, {withFileTypes: true})
    } catch (error) {
      if (d === root) throw error
      continue
    }
    for (const e of entries) {
      if (options.skipName?.(e.name)) continue
      const full = join(d, e.name)
      if (e.isDirectory()) stack.push(full)
      else if (e.isFile()) {
        const s = await lstat(full).catch(() => undefined) // removed meanwhile
        if (s) visit({rel: relative(root, full).split(sep).join('/'), size: s.size, mtimeMs: s.mtimeMs})
      }
    }
  }
}

/** Total size and count of regular files under dir (no symlink following). */
export async function directorySize(dir: string): Promise<{files: number; bytes: number}> {
  let files = 0
  let bytes = 0
  await walkFiles(dir, (f) => {
    files++
    bytes += f.size
  })
  return {files, bytes}
}
