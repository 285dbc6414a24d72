/**
 * The five curves on one shared, zoomable time axis: one uPlot per curve (own unit and scale),
 * cursor synchronised, a drag-zoom on any chart applied to all. Findings: a translucent band on
 * every chart where they happened, and on the chart of their kind a marker (a real button: focusable,
 * labelled with kind, severity and time) that selects the finding.
 */
import 'uplot/dist/uPlot.min.css'

import {useEffect, useRef} from 'preact/hooks'
import uPlot from 'uplot'

import {t, type Key} from '../i18n.js'
import {
  chartOfFinding,
  CURVES,
  findingRange,
  toPlotSeries,
  zoomed,
  type CurveKey,
  type PlotSeries,
  type SessionSeries,
} from '../shaping.js'
import {formatClock} from './format.js'

export interface ChartFinding {
  id: string
  kind: string
  severity: 'info' | 'warning' | 'critical'
  startedAt: string
  endedAt: string
}

const COLORS: Record<CurveKey, string> = {
  power: '#1f5fbf',
  soc: '#2e7d32',
  voltage: '#6a1b9a',
  current: '#00838f',
  temp: '#c62828',
}
const SEVERITY_FILL: Record<string, string> = {
  critical: 'rgba(198,40,40,0.16)',
  warning: 'rgba(239,108,0,0.16)',
  info: 'rgba(25,118,210,0.12)',
}

export interface ChartsHandle {
  zoomTo(range: {min: number; max: number}): void
}

export function Charts(props: {
  series: SessionSeries
  findings: ChartFinding[]
  onSelect(id: string): void
  handle?: {current: ChartsHandle | null}
}) {
  const host = useRef<HTMLDivElement>(null)
  const plotsRef = useRef<uPlot[]>([])
  const shapedRef = useRef<PlotSeries | null>(null)

  useEffect(() => {
    const root = host.current!
    performance.mark('charge-ops:draw-start')
    const shaped = toPlotSeries(props.series)
    performance.measure('charge-ops:shape', 'charge-ops:draw-start')
    shapedRef.current = shaped
    const ranges = props.findings
      .map((f) => ({f, r: findingRange(f, shaped.range)}))
      .filter((x): x is {f: ChartFinding; r: {start: number; end: number}} => x.r !== null)
    const width = Math.max(320, root.clientWidth)
    const sync = uPlot.sync('charge-ops-curves')
    let syncing = false
    let drawn = 0
    const plots: uPlot[] = []

    for (const key of CURVES) {
      const box = root.querySelector<HTMLDivElement>(`[data-chart="${key}"] .plot`)!
      const markers = ranges.filter((x) => chartOfFinding(x.f.kind) === key)
      const opts: uPlot.Options = {
        width,
        height: 140,
        legend: {show: false},
        cursor: {sync: {key: sync.key}, drag: {x: true, y: false}},
        scales: {x: {time: true}},
        axes: [{}, {size: 56}],
        series: [
          {},
          {label: t(`curve.${key}` as Key), stroke: COLORS[key], width: 1.25, spanGaps: false, points: {show: false}},
        ],
        hooks: {
          draw: [
            (u) => {
              // bands of every finding, under the markers
              const ctx = u.ctx
              ctx.save()
              for (const {f, r} of ranges) {
                const x0 = u.valToPos(r.start, 'x', true)
                const x1 = u.valToPos(r.end, 'x', true)
                ctx.fillStyle = SEVERITY_FILL[f.severity] ?? SEVERITY_FILL.info!
                ctx.fillRect(
                  Math.max(x0, u.bbox.left),
                  u.bbox.top,
                  Math.max(2, Math.min(x1, u.bbox.left + u.bbox.width) - Math.max(x0, u.bbox.left)),
                  u.bbox.height,
                )
              }
              ctx.restore()
              placeMarkers(u)
              if (++drawn === CURVES.length) performance.measure('charge-ops:draw', 'charge-ops:draw-start')
            },
          ],
          setScale: [
            (u, scale) => {
              if (scale !== 'x' || syncing) return
              syncing = true
              const {min, max} = u.scales.x
              for (const other of plots)
                if (other !== u && min !== undefined && max !== undefined) other.setScale('x', {min, max})
              syncing = false
            },
          ],
        },
      }
      const placeMarkers = (u: uPlot) => {
        const layer = u.over
        for (const {f, r} of markers) {
          let el = layer.querySelector<HTMLButtonElement>(`[data-finding-id="${f.id}"]`)
          if (!el) {
            el = document.createElement('button')
            el.type = 'button'
            el.className = `finding-marker sev-${f.severity}`
            el.dataset.findingId = f.id
            el.dataset.kind = f.kind
            el.dataset.start = String(r.start)
            el.dataset.end = String(r.end)
            el.textContent = '!'
            el.addEventListener('click', () => props.onSelect(f.id))
            layer.appendChild(el)
          }
          el.setAttribute(
            'aria-label',
            `${t(`kind.${f.kind}` as Key)}, ${t(`severity.${f.severity}` as Key)}, ${formatClock(f.startedAt)} – ${formatClock(f.endedAt)}`,
          )
          const left = u.valToPos(r.start, 'x')
          const right = u.valToPos(r.end, 'x')
          const visible = right >= 0 && left <= u.over.clientWidth
          el.hidden = !visible
          el.style.left = `${Math.max(0, left)}px`
          el.style.width = `${Math.max(14, Math.min(right, u.over.clientWidth) - Math.max(0, left))}px`
        }
      }
      const data: uPlot.AlignedData = [shaped.t as unknown as number[], shaped.y[key]]
      const plot = new uPlot(opts, data, box)
      sync.sub(plot)
      plots.push(plot)
    }
    plotsRef.current = plots
    if (props.handle)
      props.handle.current = {
        zoomTo: (range) => {
          for (const p of plots) p.setScale('x', range)
        },
      }
    const resize = new ResizeObserver(() => {
      const w = Math.max(320, root.clientWidth)
      for (const p of plots) if (p.width !== w) p.setSize({width: w, height: 140})
    })
    resize.observe(root)
    return () => {
      resize.disconnect()
      for (const p of plots) {
        sync.unsub(p)
        p.destroy()
      }
      plotsRef.current = []
    }
  }, [props.series, props.findings])

  const zoom = (factor: number | null) => {
    const shaped = shapedRef.current
    const first = plotsRef.current[0]
    if (!shaped || !first) return
    const view = {min: first.scales.x.min ?? shaped.range.min, max: first.scales.x.max ?? shaped.range.max}
    const next = factor === null ? shaped.range : zoomed(view, shaped.range, factor)
    for (const p of plotsRef.current) p.setScale('x', next)
  }

  return (
    <div class="charts" ref={host}>
      <div class="row" role="group" aria-label={t('analysis.zoomHint')}>
        <button type="button" onClick={() => zoom(0.5)}>
          {t('analysis.zoomIn')}
        </button>
        <button type="button" onClick={() => zoom(2)}>
          {t('analysis.zoomOut')}
        </button>
        <button type="button" onClick={() => zoom(null)}>
          {t('analysis.zoomReset')}
        </button>
        <span class="hint">{t('analysis.zoomHint')}</span>
      </div>
      {CURVES.map((key) => (
        <figure key={key} class="chart" data-chart={key}>
          <figcaption>{t(`curve.${key}` as Key)}</figcaption>
          <div class="plot" />
        </figure>
      ))}
    </div>
  )
}
