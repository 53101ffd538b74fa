import { err, ok, pgmeshError, type Result } from '@pgmesh/protocol'

/** One configuration line: its words after quote and escape processing, and where it was. */
export interface HaproxyLine {
  readonly line: number
  readonly words: readonly string[]
}

export interface HaproxySection {
  /** `global`, `defaults`, `frontend`, `backend`, `listen`, or another section keyword */
  readonly kind: string
  /** empty for `global` and an unnamed `defaults` */
  readonly name: string
  /** the words after the name (`defaults NAME from OTHER`, say) */
  readonly extra: readonly string[]
  readonly line: number
  readonly directives: readonly HaproxyLine[]
}

/** Keywords that open a section in haproxy.cfg (HAProxy 2.x configuration manual, section 2-3). */
export const HAPROXY_SECTIONS = new Set([
  'global',
  'defaults',
  'frontend',
  'backend',
  'listen',
  'userlist',
  'peers',
  'resolvers',
  'mailers',
  'program',
  'http-errors',
  'ring',
  'cache',
  'crt-store',
  'traces',
])

const NAMED = new Set([
  'frontend',
  'backend',
  'listen',
  'userlist',
  'peers',
  'resolvers',
  'mailers',
  'program',
])

/** Upper bounds so a hostile or runaway file costs bounded memory and time. */
const MAX_BYTES = 4 * 1024 * 1024
const MAX_WORDS = 256

const fail = (line: number, message: string) =>
  err(pgmeshError('IMPORT_PARSE', `haproxy.cfg line ${line}: ${message}`))

/**
 * Splits one line into words the way HAProxy does: blanks separate words, `#` starts a comment,
 * backslash escapes the next character, double quotes group (with escapes), single quotes group
 * literally.
 */
export function splitHaproxyLine(text: string, line: number): Result<string[]> {
  const words: string[] = []
  let word = ''
  let inWord = false
  let quote: '"' | "'" | null = null
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quote !== null) {
      if (c === quote) quote = null
      else if (c === '\\' && quote === '"' && i + 1 < text.length) word += text[++i]
      else word += c
      continue
    }
    if (c === '"' || c === "'") {
      quote = c
      inWord = true
    } else if (c === '\\') {
      if (i + 1 < text.length) word += text[++i]
      inWord = true
    } else if (c === '#') {
      break
    } else if (c === ' ' || c === '\t' || c === '\r') {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += c
      inWord = true
    }
    if (words.length > MAX_WORDS) return fail(line, `more than ${MAX_WORDS} words on one line`)
  }
  if (quote !== null) return fail(line, `unterminated ${quote === '"' ? 'double' : 'single'} quote`)
  if (inWord) words.push(word)
  return ok(words)
}

/** Parses haproxy.cfg into sections. Never throws; a syntax error names its line. */
export function parseHaproxy(text: string): Result<HaproxySection[]> {
  if (text.length > MAX_BYTES) {
    return err(pgmeshError('IMPORT_PARSE', `haproxy.cfg is larger than ${MAX_BYTES} bytes`))
  }
  const sections: {
    kind: string
    name: string
    extra: string[]
    line: number
    directives: HaproxyLine[]
  }[] = []
  const lines = text.split('\n')
  for (let n = 0; n < lines.length; n++) {
    const line = n + 1
    const r = splitHaproxyLine(lines[n]!, line)
    if (!r.ok) return r
    const words = r.value
    if (words.length === 0) continue
    const keyword = words[0]!
    if (HAPROXY_SECTIONS.has(keyword)) {
      const name = keyword === 'global' ? '' : (words[1] ?? '')
      if (NAMED.has(keyword) && name === '') return fail(line, `'${keyword}' needs a name`)
      if (keyword === 'global' && words.length > 1) {
        return fail(line, `'global' takes no arguments, found '${words[1]}'`)
      }
      sections.push({ kind: keyword, name, extra: words.slice(2), line, directives: [] })
      continue
    }
    const current = sections.at(-1)
    if (current === undefined) {
      return fail(
        line,
        `'${keyword}' appears before any section (global, defaults, frontend, backend, listen)`,
      )
    }
    current.directives.push({ line, words })
  }
  return ok(sections)
}
