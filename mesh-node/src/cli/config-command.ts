import { readFile } from 'node:fs/promises'
import {
  ConfigPutResponseSchema,
  ConfigViewSchema,
  formatError,
  type Issue,
  type PgmeshError,
  validateClusterConfig,
} from '@pgmesh/protocol'
import { stringify } from 'yaml'
import { readConfigDocument } from '../load-config.js'

export interface ConfigCommand {
  readonly action: 'apply' | 'get' | 'check'
  readonly file: string | undefined
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

/**
 * The cluster section of FILE: a node config (`node` + `cluster`), the output of `pgmesh config get`
 * (`baseVersion` + `cluster`), or a bare cluster section.
 */
async function clusterSection(
  file: string,
): Promise<{ ok: true; cluster: unknown; baseVersion?: number } | { ok: false; error: PgmeshError }> {
  const r = await readConfigDocument(file)
  if (!r.ok) return { ok: false, error: r.error }
  const doc = r.value
  if ('cluster' in doc) {
    return typeof doc.baseVersion === 'number'
      ? { ok: true, cluster: doc.cluster, baseVersion: doc.baseVersion }
      : { ok: true, cluster: doc.cluster }
  }
  return { ok: true, cluster: doc }
}

const issueLines = (issues: readonly Issue[] | undefined) =>
  (issues ?? []).map((i) => `  ${i.path}: ${i.message}\n`).join('')

async function bearer(tokenFile: string | undefined): Promise<Record<string, string>> {
  const token =
    tokenFile === undefined
      ? process.env.PGMESH_TOKEN
      : (await readFile(tokenFile, 'utf8')).split(/\r?\n/).find((l) => l.trim() !== '' && !l.startsWith('#'))
  return token === undefined || token.trim() === '' ? {} : { authorization: `Bearer ${token.trim()}` }
}

async function call(api: string, path: string, init: RequestInit, io: Io): Promise<Response | null> {
  try {
    return await fetch(`${api}${path}`, { ...init, signal: AbortSignal.timeout(15_000) })
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message
    io.err(`pgmesh: cannot reach the pgmesh API at ${api}: ${cause}\n`)
    return null
  }
}

/** Prints an API error body (code, message, every issue); exit status 2 for a refused config. */
async function apiFailure(res: Response, io: Io): Promise<number> {
  const body = (await res.json().catch(() => null)) as {
    error?: { code?: string; message?: string; issues?: Issue[] }
  } | null
  const e = body?.error
  io.err(
    `pgmesh: ${res.status} ${e?.code ?? ''}: ${e?.message ?? 'unexpected answer'}\n${issueLines(e?.issues)}`,
  )
  return res.status === 400 || res.status === 409 ? 2 : 1
}

export async function runConfigCommand(c: ConfigCommand, io: Io = stdio): Promise<number> {
  if (c.action === 'get') {
    const res = await call(c.api, '/v1/config', { headers: await bearer(c.tokenFile) }, io)
    if (res === null) return 1
    if (!res.ok) return apiFailure(res, io)
    const view = ConfigViewSchema.safeParse(await res.json().catch(() => null))
    if (!view.success) {
      io.err(`pgmesh: ${c.api}/v1/config answered with an unexpected body\n`)
      return 1
    }
    const v = view.data
    if (c.json) {
      io.out(`${JSON.stringify(v, null, 2)}\n`)
      return 0
    }
    io.out(
      `# cluster config version ${v.version} (${v.hash.slice(0, 12)}), made on ${v.origin} by ${v.source} at ${v.at}\n` +
        (v.pendingRestart.length > 0
          ? `# needs a restart on this node to apply: ${v.pendingRestart.join(', ')}\n`
          : '') +
        '# edit and `pgmesh config apply FILE`: baseVersion makes the edit fail if someone else edited first\n' +
        stringify({ baseVersion: v.version, cluster: v.cluster }),
    )
    return 0
  }
  if (c.file === undefined) {
    io.err(`pgmesh: config ${c.action} needs a FILE\n`)
    return 2
  }
  const section = await clusterSection(c.file)
  if (!section.ok) {
    io.err(`pgmesh: ${formatError(section.error)}\n`)
    return 2
  }
  if (c.action === 'check') {
    const r = validateClusterConfig(section.cluster)
    if (!r.ok) {
      io.err(`pgmesh: ${c.file}: ${r.error.message}\n${issueLines(r.error.issues)}`)
      return 2
    }
    io.out(
      `${c.file}: the cluster config is valid (${r.value.listeners.length} listener(s), ${r.value.databases.length} database(s))\n`,
    )
    return 0
  }
  const res = await call(
    c.api,
    '/v1/config',
    {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...(await bearer(c.tokenFile)) },
      body: JSON.stringify({
        cluster: section.cluster,
        ...(section.baseVersion === undefined ? {} : { baseVersion: section.baseVersion }),
      }),
    },
    io,
  )
  if (res === null) return 1
  if (!res.ok) return apiFailure(res, io)
  const done = ConfigPutResponseSchema.safeParse(await res.json().catch(() => null))
  if (!done.success) {
    io.err(`pgmesh: ${c.api}/v1/config answered with an unexpected body\n`)
    return 1
  }
  io.out(
    `cluster config version ${done.data.version} (${done.data.hash.slice(0, 12)}) is applied here and sent to every node\n`,
  )
  return 0
}
