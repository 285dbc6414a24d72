/** What an error report may not carry: a JWT or a bearer header (the API's token). */
export function scrub(text: string): string {
  return text
    .replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, '[token]')
    .replace(/(bearer\s+)\S+/gi, '$1[token]')
    .slice(0, 4000)
}
