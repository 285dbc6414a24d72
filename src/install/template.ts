/**
 * A deliberately small template language for templates/: `{{name}}` inserts a value,
 * `{{#name}}…{{/name}}` keeps a block when the value is truthy, `{{^name}}…{{/name}}` when it is
 * falsy. A name the view lacks is an error (a typo in a template must not render as empty).
 * Lines holding only a section tag vanish entirely, so blocks do not leave blank lines behind.
 */
import {existsSync, readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

export type View = Record<string, string | number | boolean | undefined>

const SECTION = /^[ \t]*\{\{([#^])([\w.-]+)\}\}[ \t]*\n([\s\S]*?)^[ \t]*\{\{\/\2\}\}[ \t]*\n/gm
const INLINE_SECTION = /\{\{([#^])([\w.-]+)\}\}([\s\S]*?)\{\{\/\2\}\}/g
const VARIABLE = /\{\{([\w.-]+)\}\}/g

export function renderTemplate(text: string, view: View, name = 'template'): string {
  const lookup = (key: string) => {
    if (!(key in view)) throw new Error(`${name}: the template uses {{${key}}} but no value was given for it`)
    return view[key]
  }
  let out = text
  // Sections may nest: resolve innermost-first by repeating until nothing changes.
  for (let pass = 0; pass < 10; pass++) {
    const before = out
    out = out.replace(SECTION, (_m, kind: string, key: string, body: string) =>
      Boolean(lookup(key)) === (kind === '#') ? body : '',
    )
    out = out.replace(INLINE_SECTION, (_m, kind: string, key: string, body: string) =>
      Boolean(lookup(key)) === (kind === '#') ? body : '',
    )
    if (out === before) break
  }
  return out.replace(VARIABLE, (_m, key: string) => {
    const value = lookup(key)
    if (value === undefined || typeof value === 'boolean') throw new Error(`${name}: {{${key}}} has no printable value`)
    return String(value)
  })
}

let templatesDir: string | undefined

/** templates/ at the package root, found from this module whether it runs from src/ or dist/src/. */
export function findTemplatesDir(): string {
  if (templatesDir) return templatesDir
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'templates')) && existsSync(join(dir, 'package.json')))
      return (templatesDir = join(dir, 'templates'))
    dir = dirname(dir)
  }
  throw new Error('templates/ not found next to the charge-ops package')
}

export function renderTemplateFile(relativePath: string, view: View): string {
  const text = readFileSync(join(findTemplatesDir(), relativePath), 'utf8')
  return renderTemplate(text, view, `templates/${relativePath}`)
}
