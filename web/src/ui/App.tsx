import {lazy, Suspense} from 'preact/compat'
import {useEffect} from 'preact/hooks'

import {setToken, token} from '../api.js'
import {lang, setLang, t, type Lang} from '../i18n.js'
import {startLive} from '../live.js'
import {app} from './context.js'
import {useSignal} from './hooks.js'
import {Knowledge} from './Knowledge.js'
import {linkClick, route} from './router.js'
import {Sessions} from './Sessions.js'
import {SignIn} from './SignIn.js'
import {MaintenanceBanner, StatusBar} from './StatusBar.js'

// the analysis page carries uPlot: loaded when first opened, so the first screen stays small
const Analysis = lazy(() => import('./Analysis.js').then((m) => m.Analysis))

function Page({path}: {path: string}) {
  const analysis = /^\/analyses\/([0-9a-f-]{36})$/i.exec(path)
  if (analysis)
    return (
      <Suspense fallback={<p>{t('analysis.loading')}</p>}>
        <Analysis id={analysis[1]!} />
      </Suspense>
    )
  if (path === '/knowledge') return <Knowledge />
  if (path === '/' || path === '/sessions') return <Sessions />
  return <p>{t('notFound')}</p>
}

export function App() {
  const bearer = useSignal(token)
  const path = useSignal(route)
  const current = useSignal(lang)
  useEffect(() => {
    document.documentElement.lang = current === 'zh' ? 'zh-CN' : 'en'
  }, [current])
  useEffect(() => {
    if (!bearer) return
    return startLive(
      app.endpoints.ws,
      () => token.get(),
      () => setToken(''),
    )
  }, [bearer])
  useEffect(() => {
    document.title = app.config.title
  }, [])

  return (
    <div class="layout">
      <a class="skip" href="#main">
        {t('app.skip')}
      </a>
      <header class="top">
        <span class="brand">{app.config.title}</span>
        {bearer && (
          <nav aria-label={app.config.title}>
            <a
              href="/sessions"
              onClick={linkClick}
              aria-current={path === '/' || path === '/sessions' || path.startsWith('/analyses/') ? 'page' : undefined}
            >
              {t('nav.sessions')}
            </a>
            <a href="/knowledge" onClick={linkClick} aria-current={path === '/knowledge' ? 'page' : undefined}>
              {t('nav.knowledge')}
            </a>
          </nav>
        )}
        <span class="spacer" />
        <label class="lang">
          <span>{t('nav.language')}</span>
          <select value={current} onChange={(e) => setLang((e.currentTarget as HTMLSelectElement).value as Lang)}>
            <option value="zh" lang="zh-CN">
              中文
            </option>
            <option value="en" lang="en">
              English
            </option>
          </select>
        </label>
        {bearer && (
          <button type="button" onClick={() => setToken('')}>
            {t('nav.signOut')}
          </button>
        )}
      </header>
      <MaintenanceBanner />
      <main id="main" tabIndex={-1}>
        {bearer ? <Page path={path} /> : <SignIn />}
      </main>
      <StatusBar />
    </div>
  )
}
