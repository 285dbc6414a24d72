import {useState} from 'preact/hooks'

import {ApiError, setToken} from '../api.js'
import {t} from '../i18n.js'
import {app} from './context.js'

export function SignIn() {
  const [value, setValue] = useState('')
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)
  const submit = async (e: Event) => {
    e.preventDefault()
    const candidate = value.trim()
    if (!candidate) return
    setBusy(true)
    setError('')
    try {
      await app.api.request('GET', '/sessions?limit=1', undefined, candidate)
      setToken(candidate)
    } catch (err) {
      setError(t('signin.invalid', {message: err instanceof ApiError ? `${err.status} ${err.message}` : String(err)}))
    } finally {
      setBusy(false)
    }
  }
  return (
    <section class="card signin" aria-labelledby="signin-title">
      <h1 id="signin-title">{t('signin.title')}</h1>
      <form onSubmit={submit}>
        <label for="token">{t('signin.token')}</label>
        <textarea
          id="token"
          rows={3}
          autocomplete="off"
          spellcheck={false}
          value={value}
          onInput={(e) => setValue((e.currentTarget as HTMLTextAreaElement).value)}
          aria-describedby="token-hint"
        />
        <p id="token-hint" class="hint">
          {t('signin.hint')}
        </p>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? t('signin.checking') : t('signin.submit')}
        </button>
      </form>
    </section>
  )
}
