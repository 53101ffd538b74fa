import { readFile } from 'node:fs/promises'
import type { Issue } from '@pgmesh/protocol'

/** Where a CLI command writes; tests pass their own. */
export interface Io {
  out(text: string): void
  err(text: string): void
}

export const stdio: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
}

/** How long the CLI waits for the node; entering maintenance answers once the VIP moved. */
const REQUEST_TIMEOUT_MS = 15_000

/**
 * The Authorization header from --token-file (its first line that is not blank or a comment), else
 * from PGMESH_TOKEN; none when neither is set. A string is why the file could not be read.
 */
export async function bearer(tokenFile: string | undefined): Promise<Record<string, string> | string> {
  let token = process.env.PGMESH_TOKEN
  if (tokenFile !== undefined) {
    try {
      token = (await readFile(tokenFile, 'utf8'))
        .split(/\r?\n/)
        .find((l) => l.trim() !== '' && !l.trimStart().startsWith('#'))
    } catch (e) {
      return `cannot read ${tokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`
    }
  }
  return token === undefined || token.trim() === '' ? {} : { authorization: `Bearer ${token.trim()}` }
}

export interface ApiAnswer {
  readonly status: number
  readonly ok: boolean
  /** the parsed JSON body, or null */
  readonly body: unknown
}

/** One API call with the token; null (after saying why) when the node cannot be reached. */
export async function callApi(
  api: string,
  path: string,
  init: { method?: string; json?: unknown; tokenFile: string | undefined },
  io: Io,
): Promise<ApiAnswer | number> {
  const auth = await bearer(init.tokenFile)
  if (typeof auth === 'string') {
    io.err(`pgmesh: ${auth}\n`)
    return 2
  }
  let res: Response
  try {
    res = await fetch(`${api}${path}`, {
      method: init.method ?? 'GET',
      headers: { ...auth, ...(init.json === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message
    io.err(`pgmesh: cannot reach the pgmesh API at ${api}: ${cause}\n`)
    return 1
  }
  return { status: res.status, ok: res.ok, body: await res.json().catch(() => null) }
}

export const issueLines = (issues: readonly Issue[] | undefined) =>
  (issues ?? []).map((i) => `  ${i.path}: ${i.message}\n`).join('')

/**
 * Prints an API error (status, code, message, every issue). Exit status 2 when the request itself
 * was refused (400 invalid, 404 unknown, 409 conflict), 1 otherwise.
 */
export function apiFailure(a: ApiAnswer, io: Io): number {
  const e = (a.body as { error?: { code?: string; message?: string; issues?: Issue[] } } | null)?.error
  io.err(
    `pgmesh: ${a.status} ${e?.code ?? ''}: ${e?.message ?? 'unexpected answer'}\n${issueLines(e?.issues)}`,
  )
  return a.status === 400 || a.status === 404 || a.status === 409 ? 2 : 1
}

export function unexpectedBody(api: string, path: string, io: Io): number {
  io.err(`pgmesh: ${api}${path} answered with an unexpected body\n`)
  return 1
}
