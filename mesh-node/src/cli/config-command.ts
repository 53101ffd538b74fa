import {
  type ClusterConfig,
  ConfigPutResponseSchema,
  ConfigViewSchema,
  configDocumentKind,
  formatError,
  type PgmeshError,
  validateClusterConfig,
  validateClusterEditFile,
  validateConfig,
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
 * FILE, checked as far as this node can offline: a node config (`node` + `cluster`, the whole file
 * strict, node section included), the output of `pgmesh config get` (`baseVersion` + `cluster`), or
 * a bare cluster section. Returns the cluster section to apply.
 */
async function readConfigInput(
  file: string,
): Promise<
  | { ok: true; cluster: unknown; baseVersion?: number; parsed: ClusterConfig; wholeFile: boolean }
  | { ok: false; error: PgmeshError }
> {
  const r = await readConfigDocument(file)
  if (!r.ok) return { ok: false, error: r.error }
  const doc = r.value
  const kind = configDocumentKind(doc)
  if (kind === 'file') {
    const whole = validateConfig(doc)
    if (!whole.ok) return { ok: false, error: whole.error }
    return { ok: true, cluster: doc.cluster ?? {}, parsed: whole.value.cluster, wholeFile: true }
  }
  let section: { readonly cluster: unknown; readonly baseVersion?: number } = { cluster: doc }
  if (kind === 'edit') {
    const edit = validateClusterEditFile(doc)
    if (!edit.ok) return { ok: false, error: edit.error }
    section = edit.value
  }
  const cluster = validateClusterConfig(section.cluster)
  if (!cluster.ok) return { ok: false, error: cluster.error }
  return { ok: true, ...section, parsed: cluster.value, wholeFile: false }
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
  const section = await readConfigInput(c.file)
  if (!section.ok) {
    io.err(
      section.error.issues === undefined
        ? `pgmesh: ${formatError(section.error)}\n`
        : `pgmesh: ${c.file}: ${section.error.message}\n${issueLines(section.error.issues)}`,
    )
    return 2
  }
  if (c.action === 'check') {
    const p = section.parsed
    io.out(
      `${c.file}: ${section.wholeFile ? 'the node and cluster config are' : 'the cluster config is'} valid (${p.listeners.length} listener(s), ${p.databases.length} database(s))\n`,
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
