/** Plain aligned text tables for human output (no colours: safe for pipes and logs). */
export function renderTable(
  headers: string[],
  rows: Array<Array<string | number | boolean | null | undefined>>,
): string {
  const cells = [
    headers,
    ...rows.map((row) => row.map((cell) => (cell === null || cell === undefined ? '' : String(cell)))),
  ]
  const widths = headers.map((_h, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)))
  return cells
    .map((row, r) => {
      const line = row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')
      return r === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line
    })
    .join('\n')
}
