import {lang} from '../i18n.js'

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—'
  const d = new Date(iso)
  return Number.isNaN(d.getTime())
    ? '—'
    : d.toLocaleString(lang.get() === 'zh' ? 'zh-CN' : 'en-GB', {dateStyle: 'short', timeStyle: 'medium'})
}

export function formatClock(iso: string): string {
  const d = new Date(iso)
  return d.toLocaleTimeString(lang.get() === 'zh' ? 'zh-CN' : 'en-GB')
}

export function formatNumber(value: unknown, digits = 1): string {
  return typeof value === 'number' && Number.isFinite(value)
    ? value.toLocaleString(lang.get() === 'zh' ? 'zh-CN' : 'en-GB', {maximumFractionDigits: digits})
    : '—'
}
