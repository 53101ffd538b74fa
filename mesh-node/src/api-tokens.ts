import type { ApiAuth } from '@pgmesh/control-api'
import { err, ok, pgmeshError, type Result } from '@pgmesh/protocol'
import { isPgmeshError, readPrivateFile } from './secret.js'

const MIN_TOKEN_LENGTH = 16

/** One token per line; blank lines and `#` comments are ignored. */
export function parseTokens(text: string): Result<string[]> {
  const tokens = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  if (tokens.length === 0) return err(pgmeshError('TOKENS_INVALID', 'the token file holds no token'))
  const short = tokens.findIndex((t) => t.length < MIN_TOKEN_LENGTH || /\s/.test(t))
  if (short >= 0) {
    return err(
      pgmeshError(
        'TOKENS_INVALID',
        `token ${short + 1} is shorter than ${MIN_TOKEN_LENGTH} characters or holds a space (make one with \`openssl rand -hex 24\`)`,
      ),
    )
  }
  return ok(tokens)
}

/**
 * The API's bearer tokens from `node.api.tokensFile`; `reload()` keeps the old ones on failure,
 * a file open to group or others included (FILE_MODE_UNSAFE).
 */
export class ApiTokens implements ApiAuth {
  #tokens: readonly string[] = []

  constructor(
    private readonly file: string | undefined,
    readonly protectReads: boolean,
  ) {}

  tokens(): readonly string[] {
    return this.#tokens
  }

  async reload(): Promise<Result<number>> {
    if (this.file === undefined) return ok(0)
    const read = await readPrivateFile(this.file)
    if (!read.ok) {
      if (isPgmeshError(read.error)) return err(read.error)
      return err(pgmeshError('TOKENS_INVALID', `cannot read ${this.file}: ${read.error.message}`))
    }
    const parsed = parseTokens(read.value)
    if (!parsed.ok) return parsed
    this.#tokens = parsed.value
    return ok(parsed.value.length)
  }
}
