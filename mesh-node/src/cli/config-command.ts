import {
  ConfigPutResponseSchema,
  ConfigViewSchema,
  formatError,
  type PgmeshError,
  validateClusterConfig,
} from '@pgmesh/protocol'
import { stringify } from 'yaml'
import { readConfigDocument } from '../load-config.js'
import { apiFailure, callApi, type Io, issueLines, stdio, unexpectedBody } from './api-client.js'

export interface ConfigCommand {
  readonly action: 'apply' | 'get' | 'check'
  readonly file: string | undefined
  readonly api: string
  readonly tokenFile: string | undefined
  readonly json: boolean
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

export async function runConfigCommand(c: ConfigCommand, io: Io = stdio): Promise<number> {
  if (c.action === 'get') {
    const res = await callApi(c.api, '/v1/config', { tokenFile: c.tokenFile }, io)
    if (typeof res === 'number') return res
    if (!res.ok) return apiFailure(res, io)
    const view = ConfigViewSchema.safeParse(res.body)
    if (!view.success) return unexpectedBody(c.api, '/v1/config', io)
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
  const json = {
    cluster: section.cluster,
    ...(section.baseVersion === undefined ? {} : { baseVersion: section.baseVersion }),
  }
  const res = await callApi(c.api, '/v1/config', { method: 'PUT', json, tokenFile: c.tokenFile }, io)
  if (typeof res === 'number') return res
  if (!res.ok) return apiFailure(res, io)
  const done = ConfigPutResponseSchema.safeParse(res.body)
  if (!done.success) return unexpectedBody(c.api, '/v1/config', io)
  io.out(
    `cluster config version ${done.data.version} (${done.data.hash.slice(0, 12)}) is applied here and sent to every node\n`,
  )
  return 0
}
