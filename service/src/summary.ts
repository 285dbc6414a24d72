/** The analysis summary: a template by default; an OpenAI-compatible chat endpoint when LLM_URL is set. */
import type {AnalysisResult} from './analysis.js'

export function templateSummary(result: AnalysisResult): string {
  const m = result.metrics
  const counts = new Map<string, number>()
  for (const f of result.findings) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1)
  const findings =
    counts.size === 0 ? 'no findings' : [...counts].map(([k, n]) => `${n} × ${k.replace('_', ' ')}`).join(', ')
  const critical = result.findings.filter((f) => f.severity === 'critical').length
  return (
    `Session of ${(m.durationSeconds / 60).toFixed(1)} min delivered ${m.energyKwh.toFixed(2)} kWh ` +
    `(average ${m.avgPowerKw.toFixed(1)} kW, peak ${m.peakPowerKw.toFixed(1)} kW), SOC ${m.socStart}% → ${m.socEnd}%, ` +
    `peak battery temperature ${m.peakTempC} °C. Findings: ${findings}${critical ? ` (${critical} critical)` : ''}.`
  )
}

export async function summarize(
  result: AnalysisResult,
  llm?: {url: string; model: string; apiKey?: string},
): Promise<string> {
  const fallback = templateSummary(result)
  if (!llm) return fallback
  try {
    const response = await fetch(`${llm.url.replace(/\/$/, '')}/chat/completions`, {
      method: 'POST',
      headers: {'content-type': 'application/json', ...(llm.apiKey ? {authorization: `Bearer ${llm.apiKey}`} : {})},
      body: JSON.stringify({
        model: llm.model,
        messages: [
          {role: 'system', content: 'You summarise EV charging sessions for an operator in three sentences.'},
          {role: 'user', content: JSON.stringify({metrics: result.metrics, findings: result.findings.slice(0, 20)})},
        ],
      }),
      signal: AbortSignal.timeout(20_000),
    })
    if (!response.ok) return fallback
    const body = (await response.json()) as {choices?: Array<{message?: {content?: string}}>}
    return body.choices?.[0]?.message?.content?.trim() || fallback
  } catch {
    return fallback
  }
}
