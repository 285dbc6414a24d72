/** SQL text helpers: no imports, so any module may use them without loading a driver. */

/** An identifier quoted for PostgreSQL ("a""b" for a"b). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}
