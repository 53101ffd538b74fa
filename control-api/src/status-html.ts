/**
 * The status page's markup helpers. Every value interpolated into `html` is escaped unless it is
 * already `Html`: node ids, check errors and addresses arrive from the network.
 */

/** Markup that is already safe; anything else interpolated into `html` is escaped. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value
  }
}

type Part = Html | string | number | boolean | null | undefined | readonly Part[]

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch] ?? ch)
}

function render(part: Part): string {
  if (part instanceof Html) return part.value
  if (Array.isArray(part)) return part.map(render).join('')
  if (part === null || part === undefined) return ''
  return escapeHtml(String(part))
}

export function html(strings: TemplateStringsArray, ...parts: readonly Part[]): Html {
  let out = strings[0] ?? ''
  parts.forEach((p, i) => {
    out += render(p) + (strings[i + 1] ?? '')
  })
  return new Html(out)
}

export const DASH = '–'

export function orDash(v: string | number | null | undefined): string {
  return v === null || v === undefined ? DASH : String(v)
}

export function ago(ms: number | null): string {
  if (ms === null) return DASH
  if (ms < 1000) return `${ms} ms`
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`
  return `${Math.round(ms / 60_000)} min`
}

export function bytes(n: number | null): string {
  if (n === null) return DASH
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`
}

export function badge(text: string, kind: string): Html {
  return html`<span class="badge ${kind}">${text}</span>`
}

export function table(id: string, head: readonly string[], rows: readonly Html[]): Html {
  return html`<div class="scroll"><table${id === '' ? '' : html` id="${id}"`}><thead><tr>${head.map(
    (h) => html`<th>${h}</th>`,
  )}</tr></thead><tbody>${rows}</tbody></table></div>`
}
