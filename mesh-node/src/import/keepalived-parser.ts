import { err, ok, pgmeshError, type Result } from '@pgmesh/protocol'

/**
 * One keepalived.conf statement: `keyword arg…`, optionally followed by a `{ … }` block of
 * statements. The words of an inline block (`unicast_peer { 10.0.0.2 10.0.0.3 }`) form one child.
 */
export interface KeepalivedNode {
  readonly keyword: string
  readonly args: readonly string[]
  readonly line: number
  /** null: no block */
  readonly children: readonly KeepalivedNode[] | null
}

const MAX_BYTES = 4 * 1024 * 1024
const MAX_DEPTH = 16
const MAX_TOKENS = 500_000

type Token =
  | { readonly t: 'word'; readonly v: string; readonly line: number }
  | { readonly t: '{' | '}' | 'nl'; readonly line: number }

const fail = (line: number, message: string) =>
  err(pgmeshError('IMPORT_PARSE', `keepalived.conf line ${line}: ${message}`))

/** Keepalived's lexis: blanks separate words, `#` and `!` start comments, braces are tokens, double quotes group. */
function tokenize(text: string): Result<Token[]> {
  const tokens: Token[] = []
  const lines = text.split('\n')
  for (let n = 0; n < lines.length; n++) {
    const line = n + 1
    const s = lines[n]!
    let word = ''
    let inWord = false
    let quoted = false
    const flush = () => {
      if (inWord) tokens.push({ t: 'word', v: word, line })
      word = ''
      inWord = false
    }
    for (let i = 0; i < s.length; i++) {
      const c = s[i]!
      if (quoted) {
        if (c === '"') quoted = false
        else if (c === '\\' && i + 1 < s.length) word += s[++i]
        else word += c
        continue
      }
      if (c === '"') {
        quoted = true
        inWord = true
      } else if (c === '#' || c === '!') {
        break
      } else if (c === '{' || c === '}') {
        flush()
        tokens.push({ t: c, line })
      } else if (c === ' ' || c === '\t' || c === '\r') {
        flush()
      } else {
        word += c
        inWord = true
      }
    }
    if (quoted) return fail(line, 'unterminated double quote')
    flush()
    tokens.push({ t: 'nl', line })
    if (tokens.length > MAX_TOKENS) return fail(line, `more than ${MAX_TOKENS} tokens`)
  }
  return ok(tokens)
}

/** Parses keepalived.conf into a tree of statements. Never throws; a syntax error names its line. */
export function parseKeepalived(text: string): Result<KeepalivedNode[]> {
  if (text.length > MAX_BYTES) {
    return err(pgmeshError('IMPORT_PARSE', `keepalived.conf is larger than ${MAX_BYTES} bytes`))
  }
  const lexed = tokenize(text)
  if (!lexed.ok) return lexed
  const tokens = lexed.value
  let pos = 0

  /** Statements until the closing brace (depth > 0) or the end of the file (depth 0). */
  const block = (depth: number, openLine: number): Result<KeepalivedNode[]> => {
    const out: KeepalivedNode[] = []
    for (;;) {
      const tok = tokens[pos]
      if (tok === undefined) {
        return depth === 0 ? ok(out) : fail(openLine, "'{' is never closed")
      }
      if (tok.t === 'nl') {
        pos++
        continue
      }
      if (tok.t === '}') {
        if (depth === 0) return fail(tok.line, "'}' without a matching '{'")
        pos++
        return ok(out)
      }
      if (tok.t === '{') return fail(tok.line, "'{' must follow a keyword")
      const words: string[] = []
      const line = tok.line
      for (let w = tokens[pos]; w?.t === 'word'; w = tokens[++pos]) words.push(w.v)
      let children: KeepalivedNode[] | null = null
      // a block may open on the keyword's line or alone on the next one (Keepalived accepts both)
      let look = pos
      while (tokens[look]?.t === 'nl') look++
      if (tokens[look]?.t === '{') {
        const open = tokens[look]!
        if (depth + 1 > MAX_DEPTH) return fail(open.line, `blocks nested deeper than ${MAX_DEPTH}`)
        pos = look + 1
        const inner = block(depth + 1, open.line)
        if (!inner.ok) return inner
        children = inner.value
      }
      out.push({ keyword: words[0]!, args: words.slice(1), line, children })
    }
  }

  const r = block(0, 1)
  if (!r.ok) return r
  return ok(r.value)
}
