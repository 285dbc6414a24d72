/**
 * The sessions list (paged, sorted by the API) and the upload of one or many CSV files by drag and
 * drop or the file picker, each with its own progress and the API's answer as it states it.
 * Live: an analysis event updates its row in place; a finished one reloads the page of the list
 * (for its metrics); nothing polls.
 */
import {useCallback, useEffect, useRef, useState} from 'preact/hooks'

import {ApiError} from '../api.js'
import {t, type Key} from '../i18n.js'
import {onLive} from '../live.js'
import {app} from './context.js'
import {formatNumber, formatTime} from './format.js'
import {useSignal} from './hooks.js'
import {lang} from '../i18n.js'
import {linkClick} from './router.js'
import {refreshHealth} from './StatusBar.js'

interface SessionRow {
  uploadId: string
  filename: string
  uploadedAt: string
  analysisId: string | null
  status: string | null
  findingsCount: number | null
  metrics: {energyKwh?: number; peakPowerKw?: number; startedAt?: string} | null
}

const PAGE = 10
type SortKey = 'filename' | 'status' | 'findings' | 'energy' | 'peakPower' | 'startedAt' | 'uploadedAt'
const COLUMNS: Array<{key: SortKey; label: Key}> = [
  {key: 'filename', label: 'sessions.file'},
  {key: 'status', label: 'sessions.status'},
  {key: 'findings', label: 'sessions.findings'},
  {key: 'energy', label: 'sessions.energy'},
  {key: 'peakPower', label: 'sessions.peakPower'},
  {key: 'startedAt', label: 'sessions.start'},
]

export function statusLabel(status: string | null): string {
  return status === 'queued' || status === 'running' || status === 'done' || status === 'failed'
    ? t(`status.${status}`)
    : '—'
}

export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 0) return t('upload.network')
    const text = t('error.generic', {status: error.status, message: error.message})
    return error.retryAfter !== undefined ? `${text} (${t('upload.retryAfter', {s: error.retryAfter})})` : text
  }
  return String(error)
}

interface UploadItem {
  key: number
  name: string
  progress: number
  state: 'sending' | 'done' | 'error'
  message: string
}

export function Sessions() {
  useSignal(lang)
  const [sort, setSort] = useState<{key: SortKey; order: 'asc' | 'desc'}>({key: 'uploadedAt', order: 'desc'})
  const [page, setPage] = useState(0)
  const [data, setData] = useState<{total: number; sessions: SessionRow[]} | null>(null)
  const [error, setError] = useState('')
  const [uploads, setUploads] = useState<UploadItem[]>([])
  const [dragging, setDragging] = useState(false)
  const nextKey = useRef(0)
  const reloadTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)

  const load = useCallback(async () => {
    try {
      const result = await app.api.request<{total: number; sessions: SessionRow[]}>(
        'GET',
        `/sessions?limit=${PAGE}&offset=${page * PAGE}&sort=${sort.key}&order=${sort.order}`,
      )
      setData(result)
      setError('')
    } catch (err) {
      setError(describeError(err))
    }
  }, [page, sort])

  useEffect(() => {
    void load()
  }, [load])

  useEffect(
    () =>
      onLive((event) => {
        const reload = () => {
          clearTimeout(reloadTimer.current)
          reloadTimer.current = setTimeout(() => void load(), 150)
        }
        if (event.type === 'resync') return reload()
        if (event.type !== 'analysis') return
        setData((current) => {
          if (!current) return current
          const known = current.sessions.some((s) => s.analysisId === event.analysisId)
          if (!known || event.status === 'done' || event.status === 'failed') reload()
          if (!known) return current
          return {
            ...current,
            sessions: current.sessions.map((s) =>
              s.analysisId === event.analysisId
                ? {...s, status: event.status, findingsCount: event.findingsCount ?? s.findingsCount}
                : s,
            ),
          }
        })
      }),
    [load],
  )

  const update = (key: number, patch: Partial<UploadItem>) =>
    setUploads((items) => items.map((u) => (u.key === key ? {...u, ...patch} : u)))

  const send = (files: FileList | File[]) => {
    for (const file of Array.from(files)) {
      const key = nextKey.current++
      setUploads((items) => [
        ...items,
        {key, name: file.name, progress: 0, state: 'sending', message: t('upload.sending', {pct: 0})},
      ])
      app.api
        .upload(file, (f) => update(key, {progress: f, message: t('upload.sending', {pct: Math.round(f * 100)})}))
        .then(() => {
          update(key, {progress: 1, state: 'done', message: t('upload.queued')})
          void load()
        })
        .catch((err) => {
          update(key, {state: 'error', message: describeError(err)})
          if (err instanceof ApiError && err.status === 503) void refreshHealth()
        })
    }
  }

  const pages = data ? Math.max(1, Math.ceil(data.total / PAGE)) : 1
  const toggleSort = (key: SortKey) => {
    setPage(0)
    setSort((s) =>
      s.key === key
        ? {key, order: s.order === 'asc' ? 'desc' : 'asc'}
        : {key, order: key === 'filename' || key === 'status' ? 'asc' : 'desc'},
    )
  }

  return (
    <>
      <h1>{t('sessions.title')}</h1>
      <section
        class={`card dropzone${dragging ? ' dragging' : ''}`}
        aria-labelledby="upload-title"
        onDragOver={(e) => {
          e.preventDefault()
          setDragging(true)
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault()
          setDragging(false)
          if (e.dataTransfer?.files.length) send(e.dataTransfer.files)
        }}
      >
        <h2 id="upload-title">{t('upload.title')}</h2>
        <p>
          {t('upload.drop')}{' '}
          <input
            id="upload-input"
            class="visually-hidden"
            type="file"
            multiple
            accept=".csv,text/csv"
            aria-describedby="upload-format"
            onChange={(e) => {
              const input = e.currentTarget as HTMLInputElement
              if (input.files?.length) send(input.files)
              input.value = ''
            }}
          />
          <label class="button" for="upload-input">
            {t('upload.choose')}
          </label>
        </p>
        <p id="upload-format" class="hint">
          {t('upload.format')}
        </p>
        {uploads.length > 0 && (
          <ul class="uploads" aria-live="polite">
            {uploads.map((u) => (
              <li key={u.key} class={`upload ${u.state}`} data-file={u.name}>
                <span class="name">{u.name}</span>
                <progress max={1} value={u.progress} aria-label={u.name} />
                <span class="message" role={u.state === 'error' ? 'alert' : undefined}>
                  {u.message}
                </span>
              </li>
            ))}
          </ul>
        )}
      </section>

      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {data && data.sessions.length === 0 && <p>{t('sessions.empty')}</p>}
      {data && data.sessions.length > 0 && (
        <div class="table-wrap">
          <table class="sessions">
            <caption class="visually-hidden">{t('sessions.title')}</caption>
            <thead>
              <tr>
                {COLUMNS.map((c) => (
                  <th
                    key={c.key}
                    scope="col"
                    aria-sort={sort.key === c.key ? (sort.order === 'asc' ? 'ascending' : 'descending') : undefined}
                  >
                    <button
                      type="button"
                      class="sort"
                      onClick={() => toggleSort(c.key)}
                      aria-label={t('sessions.sortBy', {column: t(c.label)})}
                    >
                      {t(c.label)}
                      <span aria-hidden="true">{sort.key === c.key ? (sort.order === 'asc' ? ' ▲' : ' ▼') : ''}</span>
                    </button>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {data.sessions.map((s) => (
                <tr key={s.uploadId} data-analysis-id={s.analysisId ?? ''}>
                  <td>
                    {s.analysisId ? (
                      <a href={`/analyses/${s.analysisId}`} onClick={linkClick}>
                        {s.filename}
                      </a>
                    ) : (
                      s.filename
                    )}
                  </td>
                  <td>
                    <span class={`badge status-${s.status ?? 'none'}`} data-status={s.status ?? ''}>
                      {statusLabel(s.status)}
                    </span>
                  </td>
                  <td class="num">{s.findingsCount ?? '—'}</td>
                  <td class="num">{formatNumber(s.metrics?.energyKwh, 2)}</td>
                  <td class="num">{formatNumber(s.metrics?.peakPowerKw, 1)}</td>
                  <td>{formatTime(s.metrics?.startedAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {data && data.total > PAGE && (
        <nav class="pager" aria-label={t('sessions.page', {page: page + 1, pages, total: data.total})}>
          <button type="button" disabled={page === 0} onClick={() => setPage((p) => p - 1)}>
            {t('sessions.prev')}
          </button>
          <span>{t('sessions.page', {page: page + 1, pages, total: data.total})}</span>
          <button type="button" disabled={page + 1 >= pages} onClick={() => setPage((p) => p + 1)}>
            {t('sessions.next')}
          </button>
        </nav>
      )}
    </>
  )
}
