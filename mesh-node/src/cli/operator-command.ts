import { readFile } from 'node:fs/promises'
import { MaintenanceViewSchema, MemberRemoveResponseSchema } from '@pgmesh/protocol'

/** `pgmesh maintenance on|off` and `pgmesh members remove ID`. */
export type OperatorCommand =
  | {
      readonly action: 'maintenance'
      readonly enabled: boolean
      readonly reason: string | undefined
      readonly api: string
      readonly tokenFile: string | undefined
      readonly json: boolean
    }
  | {
      readonly action: 'remove'
      readonly id: string
      readonly api: string
      readonly tokenFile: string | undefined
      readonly json: boolean
    }

interface Io {
  out(text: string): void
  err(text: string): void
}

const stdio: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
}

/** How long the CLI waits for the node; entering maintenance answers once the VIP moved. */
const REQUEST_TIMEOUT_MS = 15_000

/** The token from --token-file (first line that is not a comment), else PGMESH_TOKEN. */
async function bearer(tokenFile: string | undefined): Promise<Record<string, string> | string> {
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

export async function runOperatorCommand(c: OperatorCommand, io: Io = stdio): Promise<number> {
  const auth = await bearer(c.tokenFile)
  if (typeof auth === 'string') {
    io.err(`pgmesh: ${auth}\n`)
    return 2
  }
  const [path, init]: [string, RequestInit] =
    c.action === 'maintenance'
      ? [
          '/v1/maintenance',
          {
            method: 'PUT',
            headers: { ...auth, 'content-type': 'application/json' },
            body: JSON.stringify(
              c.reason === undefined ? { enabled: c.enabled } : { enabled: c.enabled, reason: c.reason },
            ),
          },
        ]
      : [`/v1/members/${encodeURIComponent(c.id)}/remove`, { method: 'POST', headers: auth }]
  let res: Response
  try {
    res = await fetch(`${c.api}${path}`, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message
    io.err(`pgmesh: cannot reach the pgmesh API at ${c.api}: ${cause}\n`)
    return 1
  }
  const body: unknown = await res.json().catch(() => null)
  if (!res.ok) {
    const e = (body as { error?: { code?: string; message?: string } } | null)?.error
    io.err(`pgmesh: ${res.status} ${e?.code ?? ''}: ${e?.message ?? 'unexpected answer'}\n`)
    return res.status === 400 || res.status === 404 || res.status === 409 ? 2 : 1
  }
  if (c.action === 'maintenance') {
    const v = MaintenanceViewSchema.safeParse(body)
    if (!v.success) {
      io.err(`pgmesh: ${c.api}${path} answered with an unexpected body\n`)
      return 1
    }
    const m = v.data
    io.out(
      c.json
        ? `${JSON.stringify(m, null, 2)}\n`
        : m.enabled
          ? `${m.node} is in maintenance since ${m.since}${m.reason === null ? '' : ` (${m.reason})`}: not eligible for MASTER, listeners closed, ${m.activeSessions} session(s) draining\n`
          : `${m.node} is out of maintenance: listeners open, eligible for MASTER\n`,
    )
    return 0
  }
  const r = MemberRemoveResponseSchema.safeParse(body)
  if (!r.success) {
    io.err(`pgmesh: ${c.api}${path} answered with an unexpected body\n`)
    return 1
  }
  io.out(
    c.json
      ? `${JSON.stringify(r.data, null, 2)}\n`
      : `removed ${r.data.removed} (incarnation ${r.data.incarnation}); every node drops it, the MASTER takes it out of the voters (${r.data.voters?.join(', ') ?? 'none known'} right now)\n`,
  )
  return 0
}
