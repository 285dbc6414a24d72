/**
 * The --json contract: the shape (keys and types) of what every command prints with --json is
 * pinned in __snapshots__/json-contract.json, the way the Salesforce CLI pins its commands' JSON
 * schemas, so that a change to a shape is a deliberate, reviewed snapshot update
 * (`npx vitest run test/unit/json-contract.test.ts -u`) rather than an accident.
 *
 * The shape is read from the type checker, not from a run: what `run()` resolves to is what
 * oclif prints with --json. So every command is covered, including those whose runs need a whole
 * stack; the e2e and integration tests check that the values printed match those types.
 * Optional keys end in `?`; string/number literal unions are kept (they are part of the contract).
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import ts from 'typescript'
import {describe, expect, it} from 'vitest'

const root = join(import.meta.dirname, '..', '..')
const MAX_DEPTH = 8

function commandsWithJson(): string[] {
  const manifest = JSON.parse(readFileSync(join(root, 'oclif.manifest.json'), 'utf8')) as {
    commands: Record<string, {flags: Record<string, unknown>}>
  }
  return Object.entries(manifest.commands)
    .filter(([, c]) => 'json' in c.flags)
    .map(([id]) => id)
    .sort()
}

function fileOf(id: string): string {
  const rel = id.split(':').join('/')
  for (const candidate of [`commands/${rel}.ts`, `commands/${rel}/index.ts`]) {
    try {
      readFileSync(join(root, candidate))
      return join(root, candidate)
    } catch {}
  }
  throw new Error(`no source for ${id}`)
}

function shapeOf(checker: ts.TypeChecker, type: ts.Type, depth: number, seen: Set<ts.Type>): unknown {
  if (type.isUnion()) {
    const parts = type.types.map((t) => shapeOf(checker, t, depth, seen))
    const strings = [...new Set(parts.map((p) => JSON.stringify(p)))].sort()
    if (strings.length === 1) return JSON.parse(strings[0])
    // a union of leaves reads as TypeScript does: "string | null", booleans as one
    if (parts.every((p) => typeof p === 'string'))
      return strings
        .map((s) => JSON.parse(s) as string)
        .join(' | ')
        .replace('false | true', 'boolean')
    return {anyOf: strings.map((s) => JSON.parse(s))}
  }
  const flags = type.getFlags()
  if (
    flags &
    (ts.TypeFlags.StringLike |
      ts.TypeFlags.NumberLike |
      ts.TypeFlags.BooleanLike |
      ts.TypeFlags.Null |
      ts.TypeFlags.Undefined |
      ts.TypeFlags.Void |
      ts.TypeFlags.Any |
      ts.TypeFlags.Unknown |
      ts.TypeFlags.BigIntLike |
      ts.TypeFlags.Never)
  ) {
    return checker.typeToString(type)
  }
  const name = type.getSymbol()?.getName()
  if (name === 'Date') return 'Date (ISO string)'
  if (checker.isArrayType(type) || checker.isTupleType(type)) {
    const args = checker.getTypeArguments(type as ts.TypeReference)
    return checker.isTupleType(type)
      ? {tuple: args.map((a) => shapeOf(checker, a, depth + 1, seen))}
      : {array: shapeOf(checker, args[0], depth + 1, seen)}
  }
  if (depth >= MAX_DEPTH || seen.has(type)) return checker.typeToString(type)
  const index = type.getStringIndexType()
  const props = type.getProperties().filter((p) => {
    const t = checker.getTypeOfSymbol(p)
    return t.getCallSignatures().length === 0 // methods are not printed
  })
  if (props.length === 0 && index) return {record: shapeOf(checker, index, depth + 1, seen)}
  const next = new Set(seen).add(type)
  const out: Record<string, unknown> = {}
  for (const p of props.sort((a, b) => (a.getName() < b.getName() ? -1 : 1))) {
    const optional = (p.getFlags() & ts.SymbolFlags.Optional) !== 0
    const t = checker.getTypeOfSymbol(p)
    // an optional key's `| undefined` is already said by the `?`
    out[`${p.getName()}${optional ? '?' : ''}`] = shapeOf(
      checker,
      optional ? checker.getNonNullableType(t) : t,
      depth + 1,
      next,
    )
  }
  if (index) out['[key: string]'] = shapeOf(checker, index, depth + 1, next)
  return out
}

describe('--json contract', () => {
  it("pins the shape of every command's --json result", async () => {
    const ids = commandsWithJson()
    const files = ids.map(fileOf)
    const config = ts.getParsedCommandLineOfConfigFile(
      join(root, 'tsconfig.json'),
      {},
      {...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {}},
    )!
    const program = ts.createProgram(files, {...config.options, noEmit: true})
    const checker = program.getTypeChecker()
    const contract: Record<string, unknown> = {}
    ids.forEach((id, i) => {
      const source = program.getSourceFile(files[i])!
      const cls = source.statements.find(
        (s): s is ts.ClassDeclaration =>
          ts.isClassDeclaration(s) && (ts.getCombinedModifierFlags(s) & ts.ModifierFlags.Default) !== 0,
      )
      if (!cls) throw new Error(`${id}: no default-exported class`)
      const run = cls.members.find(
        (m): m is ts.MethodDeclaration => ts.isMethodDeclaration(m) && m.name.getText(source) === 'run',
      )
      if (!run) throw new Error(`${id}: no run()`)
      const signature = checker.getSignatureFromDeclaration(run)!
      const returned = checker.getAwaitedType(checker.getReturnTypeOfSignature(signature))!
      contract[id] = shapeOf(checker, returned, 0, new Set())
    })
    await expect(JSON.stringify(contract, null, 1) + '\n').toMatchFileSnapshot('__snapshots__/json-contract.json')
  }, 120_000)
})
