/**
 * One analysis: status (live), summary, the curves with the findings marked, each finding with its
 * severity and knowledge passages, and the metrics table. A separate chunk (it carries uPlot).
 */
import {useCallback, useEffect, useMemo, useRef, useState} from 'preact/hooks'

import {lang, t, type Key} from '../i18n.js'
import {onLive} from '../live.js'
import {findingRange, type SessionSeries} from '../shaping.js'
import {Charts, type ChartFinding, type ChartsHandle} from './Charts.js'
import {app} from './context.js'
import {formatNumber, formatTime} from './format.js'
import {useSignal} from './hooks.js'
import {linkClick} from './router.js'
import {describeError, statusLabel} from './Sessions.js'

interface Finding extends ChartFinding {
  durationSeconds: number
  peakValue: number
  detail: string
  passages: Array<{passageId: string; title: string; content: string}>
}

interface AnalysisData {
  id: string
  status: string
  error: string | null
  summary: string | null
  metrics: Record<string, unknown> | null
  upload: {filename: string}
  findings: Finding[]
}

const METRICS = [
  'startedAt',
  'endedAt',
  'samples',
  'durationSeconds',
  'chargingSeconds',
  'energyKwh',
  'avgPowerKw',
  'peakPowerKw',
  'socStart',
  'socEnd',
  'peakTempC',
  'minVoltageV',
  'maxVoltageV',
  'invalidLines',
]

export function Analysis({id}: {id: string}) {
  useSignal(lang)
  const [analysis, setAnalysis] = useState<AnalysisData | null>(null)
  const [series, setSeries] = useState<SessionSeries | null>(null)
  const [error, setError] = useState('')
  const [selected, setSelected] = useState<string | null>(null)
  const charts = useRef<ChartsHandle | null>(null)

  const load = useCallback(async () => {
    try {
      const a = await app.api.request<AnalysisData>('GET', `/analyses/${id}`)
      setAnalysis(a)
      if (a.status === 'done') setSeries(await app.api.request<SessionSeries>('GET', `/analyses/${id}/series`))
      setError('')
    } catch (err) {
      setError(describeError(err))
    }
  }, [id])

  useEffect(() => {
    setAnalysis(null)
    setSeries(null)
    void load()
    return onLive((event) => {
      if (event.type === 'resync' || (event.type === 'analysis' && event.analysisId === id)) void load()
    })
  }, [id, load])

  const findings = useMemo(() => analysis?.findings ?? [], [analysis])
  const select = (fid: string) => {
    setSelected(fid)
    document.getElementById(`finding-${fid}`)?.focus()
  }
  const show = (f: Finding) => {
    if (!series || !series.t.length) return
    const r = findingRange(f, {min: series.t[0]!, max: series.t[series.t.length - 1]!})
    if (!r) return
    const pad = Math.max(60, (r.end - r.start) * 2)
    charts.current?.zoomTo({
      min: Math.max(series.t[0]!, r.start - pad),
      max: Math.min(series.t[series.t.length - 1]!, r.end + pad),
    })
    setSelected(f.id)
  }

  if (error)
    return (
      <p class="error" role="alert">
        {error}
      </p>
    )
  if (!analysis) return <p>{t('analysis.loading')}</p>
  return (
    <article class="analysis" data-status={analysis.status}>
      <p>
        <a href="/sessions" onClick={linkClick}>
          ← {t('analysis.back')}
        </a>
      </p>
      <h1>{t('analysis.title', {file: analysis.upload.filename})}</h1>
      <p>
        <span class={`badge status-${analysis.status}`} data-status={analysis.status}>
          {statusLabel(analysis.status)}
        </span>
      </p>
      {(analysis.status === 'queued' || analysis.status === 'running') && (
        <p role="status">{t('analysis.pending', {status: statusLabel(analysis.status)})}</p>
      )}
      {analysis.status === 'failed' && (
        <p class="error" role="alert">
          {t('analysis.failed', {error: analysis.error ?? '?'})}
        </p>
      )}
      {analysis.summary && (
        <section class="card" aria-labelledby="summary-title">
          <h2 id="summary-title">{t('analysis.summary')}</h2>
          <p>{analysis.summary}</p>
        </section>
      )}
      {series && (
        <section class="card" aria-labelledby="curves-title">
          <h2 id="curves-title">{t('analysis.curves')}</h2>
          {series.decimated && (
            <p class="hint">{t('analysis.decimated', {points: series.t.length, samples: series.samples})}</p>
          )}
          <Charts series={series} findings={findings} onSelect={select} handle={charts} />
        </section>
      )}
      {analysis.status === 'done' && (
        <section class="card" aria-labelledby="findings-title">
          <h2 id="findings-title">{t('analysis.findings')}</h2>
          {findings.length === 0 ? (
            <p>{t('analysis.noFindings')}</p>
          ) : (
            <ol class="findings">
              {findings.map((f) => (
                <li
                  key={f.id}
                  id={`finding-${f.id}`}
                  tabIndex={-1}
                  class={`finding sev-${f.severity}${selected === f.id ? ' selected' : ''}`}
                  data-kind={f.kind}
                >
                  <h3>
                    <span class={`badge sev-${f.severity}`}>{t(`severity.${f.severity}` as Key)}</span>{' '}
                    {t(`kind.${f.kind}` as Key)}
                  </h3>
                  <p>
                    {t('analysis.when', {
                      start: formatTime(f.startedAt),
                      end: formatTime(f.endedAt),
                      duration: formatNumber(f.durationSeconds, 0),
                    })}{' '}
                    · {t('analysis.peak', {value: formatNumber(f.peakValue, 1)})}
                  </p>
                  <p>{f.detail}</p>
                  {series && (
                    <button type="button" onClick={() => show(f)}>
                      {t('analysis.showOnChart')}
                    </button>
                  )}
                  {f.passages.length === 0 ? (
                    <p class="hint">{t('analysis.noPassages')}</p>
                  ) : (
                    <details class="passages">
                      <summary>
                        {t('analysis.passages')} ({f.passages.length}): {f.passages.map((p) => p.title).join(' · ')}
                      </summary>
                      <ul>
                        {f.passages.map((p) => (
                          <li key={p.passageId}>
                            <strong>{p.title}</strong>
                            <p>{p.content}</p>
                          </li>
                        ))}
                      </ul>
                    </details>
                  )}
                </li>
              ))}
            </ol>
          )}
        </section>
      )}
      {analysis.metrics && (
        <section class="card" aria-labelledby="metrics-title">
          <h2 id="metrics-title">{t('analysis.metrics')}</h2>
          <table class="metrics">
            <tbody>
              {METRICS.filter((k) => analysis.metrics![k] !== undefined).map((k) => {
                const v = analysis.metrics![k]
                return (
                  <tr key={k}>
                    <th scope="row">{t(`metric.${k}` as Key)}</th>
                    <td class="num">
                      {typeof v === 'number'
                        ? formatNumber(v, 2)
                        : k.endsWith('At')
                          ? formatTime(v as string)
                          : String(v ?? '—')}
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </section>
      )}
    </article>
  )
}
