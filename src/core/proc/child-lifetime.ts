/**
 * Every child charge-ops starts dies with it — also when charge-ops is killed with SIGKILL, which
 * runs no handler. The one mechanism (docs/conventions.md "Child processes"):
 *
 *   PR_SET_PDEATHSIG = SIGKILL, set by util-linux `setpriv --pdeathsig KILL -- FILE ARGS…`, which
 *   then execs FILE: the kernel kills the child the moment its parent (this process) dies.
 *
 * Why this and not the alternatives: a process group cannot be signalled by a parent that is
 * already dead; a child's stdin closing only stops children that read stdin (pg_dump, tar and
 * zstd writing a file do not — a killed `backup db` left them finishing a 182 MB temp file). The
 * signal is inherited across exec but not by the child's own forks: a server started through
 * `pg_ctl start`, or a detached service process, is not bound (and must not be).
 *
 * `setpriv` is part of util-linux (Debian: essential). Where it is missing (not Linux) children are
 * started directly, unbound. The binary is looked up on PATH here, so that a missing one is still
 * reported as "X was not found" (with its install hint) rather than as setpriv's exit 127.
 */
import {accessSync, constants} from 'node:fs'
import {delimiter, isAbsolute, join} from 'node:path'

let setprivPath: string | null | undefined

function findOnPath(file: string, pathVar: string | undefined): string | undefined {
  if (file.includes('/')) {
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {
      return undefined
    }
  }
  for (const dir of (pathVar ?? '').split(delimiter)) {
    if (!dir || !isAbsolute(dir)) continue
    try {
      accessSync(join(dir, file), constants.X_OK)
      return join(dir, file)
    } catch {
      // not here
    }
  }
  return undefined
}

function setpriv(): string | null {
  if (setprivPath === undefined) {
    setprivPath =
      process.platform === 'linux' && process.env.CHARGE_OPS_NO_PDEATHSIG !== '1'
        ? (findOnPath('setpriv', `${process.env.PATH ?? ''}:/usr/bin:/bin`) ?? null)
        : null
  }
  return setprivPath
}

/**
 * The command line that starts `file args` bound to this process. Returns undefined when `file`
 * is not found on PATH (the caller reports it as missing); unchanged when setpriv is unavailable.
 */
export function boundToParent(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): {file: string; args: string[]} | undefined {
  const wrapper = setpriv()
  if (!wrapper) return {file, args: [...args]}
  const resolved = findOnPath(file, env.PATH)
  if (!resolved) return undefined
  return {file: wrapper, args: ['--pdeathsig', 'KILL', '--', resolved, ...args]}
}
