import {useState} from 'preact/hooks'

import {lang, t} from '../i18n.js'
import {app} from './context.js'
import {useSignal} from './hooks.js'
import {describeError} from './Sessions.js'

interface Hit {
  passageId: string
  title: string
  content: string
  distance: number
}

export function Knowledge() {
  useSignal(lang)
  const [query, setQuery] = useState('')
  const [results, setResults] = useState<Hit[] | null>(null)
  const [searchError, setSearchError] = useState('')
  const [doc, setDoc] = useState({title: '', text: '', source: ''})
  const [addMessage, setAddMessage] = useState<{ok: boolean; text: string} | null>(null)

  const search = async (e: Event) => {
    e.preventDefault()
    if (!query.trim()) return
    try {
      const r = await app.api.request<{results: Hit[]}>(
        'GET',
        `/knowledge/search?q=${encodeURIComponent(query)}&limit=5`,
      )
      setResults(r.results)
      setSearchError('')
    } catch (err) {
      setSearchError(describeError(err))
    }
  }
  const add = async (e: Event) => {
    e.preventDefault()
    try {
      const r = await app.api.request<{documents: Array<{title: string; created: boolean; passages: number}>}>(
        'POST',
        '/knowledge',
        {title: doc.title, text: doc.text, ...(doc.source.trim() ? {source: doc.source.trim()} : {})},
      )
      const d = r.documents[0]!
      setAddMessage({
        ok: true,
        text: d.created ? t('kb.added', {title: d.title, passages: d.passages}) : t('kb.exists', {title: d.title}),
      })
      if (d.created) setDoc({title: '', text: '', source: ''})
    } catch (err) {
      setAddMessage({ok: false, text: describeError(err)})
    }
  }
  const field = (key: 'title' | 'text' | 'source') => ({
    value: doc[key],
    onInput: (e: Event) => setDoc((d) => ({...d, [key]: (e.currentTarget as HTMLInputElement).value})),
  })

  return (
    <>
      <h1>{t('kb.title')}</h1>
      <section class="card" aria-labelledby="kb-search">
        <h2 id="kb-search">{t('kb.search')}</h2>
        <form role="search" onSubmit={search} class="row">
          <label for="kb-q" class="visually-hidden">
            {t('kb.search')}
          </label>
          <input
            id="kb-q"
            type="search"
            value={query}
            onInput={(e) => setQuery((e.currentTarget as HTMLInputElement).value)}
          />
          <button type="submit">{t('kb.searchButton')}</button>
        </form>
        {searchError && (
          <p class="error" role="alert">
            {searchError}
          </p>
        )}
        {results && results.length === 0 && <p>{t('kb.noResults')}</p>}
        {results && results.length > 0 && (
          <ol class="results" aria-live="polite">
            {results.map((r) => (
              <li key={r.passageId}>
                <h3>{r.title}</h3>
                <p>{r.content}</p>
                <p class="hint">{t('kb.distance', {d: r.distance.toFixed(3)})}</p>
              </li>
            ))}
          </ol>
        )}
      </section>
      <section class="card" aria-labelledby="kb-add">
        <h2 id="kb-add">{t('kb.add')}</h2>
        <form onSubmit={add} class="stack">
          <label for="kb-title">{t('kb.docTitle')}</label>
          <input id="kb-title" required {...field('title')} />
          <label for="kb-text">{t('kb.docText')}</label>
          <textarea id="kb-text" required rows={6} {...field('text')} />
          <label for="kb-source">{t('kb.docSource')}</label>
          <input id="kb-source" {...field('source')} />
          <button type="submit">{t('kb.addButton')}</button>
          {addMessage && (
            <p class={addMessage.ok ? 'ok' : 'error'} role={addMessage.ok ? 'status' : 'alert'}>
              {addMessage.text}
            </p>
          )}
        </form>
      </section>
    </>
  )
}
