import { z } from 'zod'

/** What Patroni's REST API says about its node (`GET /patroni`). */
export interface PatroniObservation {
  readonly reachable: boolean
  /** Patroni 3.0 says "master", later versions "primary" */
  readonly role: 'primary' | 'replica' | 'unknown'
  readonly state: string | null
  readonly timeline: number | null
  /** received − replayed WAL on a replica, bytes */
  readonly lagBytes: number | null
  readonly error: string | null
}

const PatroniResponseSchema = z.object({
  role: z.string().optional(),
  state: z.string().optional(),
  timeline: z.number().int().optional(),
  xlog: z
    .object({ received_location: z.number().optional(), replayed_location: z.number().optional() })
    .partial()
    .optional(),
})

const PRIMARY_ROLES = new Set(['master', 'primary', 'leader', 'standby_leader'])
const REPLICA_ROLES = new Set(['replica', 'standby'])

/** One GET /patroni. A 503 carries the same JSON (Patroni answers 503 when not running). Never throws. */
export async function probePatroni(
  url: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<PatroniObservation> {
  const down = (error: string): PatroniObservation => ({
    reachable: false,
    role: 'unknown',
    state: null,
    timeline: null,
    lagBytes: null,
    error,
  })
  try {
    const timeout = AbortSignal.timeout(timeoutMs)
    const res = await fetch(`${url.replace(/\/$/, '')}/patroni`, {
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
    })
    const body = PatroniResponseSchema.safeParse(await res.json())
    if (!body.success) return down(`unexpected /patroni body (HTTP ${res.status})`)
    const b = body.data
    const role =
      b.role === undefined
        ? 'unknown'
        : PRIMARY_ROLES.has(b.role)
          ? 'primary'
          : REPLICA_ROLES.has(b.role)
            ? 'replica'
            : 'unknown'
    const rx = b.xlog?.received_location
    const rp = b.xlog?.replayed_location
    return {
      reachable: true,
      role,
      state: b.state ?? null,
      timeline: b.timeline ?? null,
      lagBytes: role === 'replica' && rx !== undefined && rp !== undefined ? Math.max(0, rx - rp) : null,
      error: res.ok ? null : `HTTP ${res.status}`,
    }
  } catch (e) {
    return down(
      e instanceof Error
        ? e.name === 'TimeoutError'
          ? `no answer within ${timeoutMs} ms`
          : e.message
        : String(e),
    )
  }
}
