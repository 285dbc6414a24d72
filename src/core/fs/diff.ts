/** A small unified diff (LCS over lines) for showing what a rerun of init would change. */

export function unifiedDiff(oldText: string, newText: string, oldName: string, newName: string, context = 3): string {
  const a = oldText.split('\n')
  const b = newText.split('\n')
  const n = a.length
  const m = b.length
  // LCS table; config files are small (hundreds of lines), so O(n·m) is fine.
  const lcs: Uint32Array[] = Array.from({length: n + 1}, () => new Uint32Array(m + 1))
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1])
  }
  type Op = {kind: ' ' | '-' | '+'; text: string; ai: number; bi: number}
  const ops: Op[] = []
  let i = 0
  let j = 0
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({kind: ' ', text: a[i], ai: i++, bi: j++})
    } else if (j < m && (i >= n || lcs[i][j + 1] >= lcs[i + 1][j])) {
      ops.push({kind: '+', text: b[j], ai: i, bi: j++})
    } else {
      ops.push({kind: '-', text: a[i], ai: i++, bi: j})
    }
  }
  const changed = ops.map((op, k) => (op.kind === ' ' ? -1 : k)).filter((k) => k >= 0)
  if (changed.length === 0) return ''
  const out = [`--- ${oldName}`, `+++ ${newName}`]
  let k = 0
  while (k < changed.length) {
    let start = Math.max(0, changed[k] - context)
    let end = Math.min(ops.length, changed[k] + context + 1)
    while (k + 1 < changed.length && changed[k + 1] - context <= end) {
      k++
      end = Math.min(ops.length, changed[k] + context + 1)
    }
    const hunk = ops.slice(start, end)
    const aStart = hunk[0].ai
    const bStart = hunk[0].bi
    const aLen = hunk.filter((o) => o.kind !== '+').length
    const bLen = hunk.filter((o) => o.kind !== '-').length
    out.push(`@@ -${aStart + (aLen ? 1 : 0)},${aLen} +${bStart + (bLen ? 1 : 0)},${bLen} @@`)
    for (const op of hunk) out.push(`${op.kind}${op.text}`)
    k++
    start = end
  }
  return out.join('\n') + '\n'
}
