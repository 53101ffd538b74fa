import { MaintenanceViewSchema, MemberRemoveResponseSchema } from '@pgmesh/protocol'
import { apiFailure, callApi, type Io, stdio, unexpectedBody } from './api-client.js'

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

export async function runOperatorCommand(c: OperatorCommand, io: Io = stdio): Promise<number> {
  const [path, init] =
    c.action === 'maintenance'
      ? [
          '/v1/maintenance',
          {
            method: 'PUT',
            json: c.reason === undefined ? { enabled: c.enabled } : { enabled: c.enabled, reason: c.reason },
            tokenFile: c.tokenFile,
          },
        ]
      : [`/v1/members/${encodeURIComponent(c.id)}/remove`, { method: 'POST', tokenFile: c.tokenFile }]
  const res = await callApi(c.api, path, init, io)
  if (typeof res === 'number') return res
  if (!res.ok) return apiFailure(res, io)
  const body = res.body
  if (c.action === 'maintenance') {
    const v = MaintenanceViewSchema.safeParse(body)
    if (!v.success) return unexpectedBody(c.api, path, io)
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
  if (!r.success) return unexpectedBody(c.api, path, io)
  io.out(
    c.json
      ? `${JSON.stringify(r.data, null, 2)}\n`
      : `removed ${r.data.removed} (incarnation ${r.data.incarnation}); every node drops it, the MASTER takes it out of the voters (${r.data.voters?.join(', ') ?? 'none known'} right now)\n`,
  )
  return 0
}
