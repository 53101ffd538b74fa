import pg from 'pg'

export interface PostgresTarget {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password?: string
  readonly database: string
}

/** The database's own answer: the only one that says whether it accepts writes now. */
export interface PostgresObservation {
  readonly reachable: boolean
  /** connected and not in recovery */
  readonly writable: boolean
  readonly timeline: number | null
  /** received − replayed WAL on a replica, bytes */
  readonly lagBytes: number | null
  readonly error: string | null
}

// A primary's timeline is in its current WAL file name; a replica reports the one it receives.
const PROBE_SQL = `SELECT pg_is_in_recovery() AS recovery,
  CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1)
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline,
  CASE WHEN pg_is_in_recovery()
       THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint END AS lag`

/** One connection, one query, always closed. Never throws. */
export async function probePostgres(
  t: PostgresTarget,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<PostgresObservation> {
  const client = new pg.Client({
    host: t.host,
    port: t.port,
    user: t.user,
    database: t.database,
    ...(t.password === undefined ? {} : { password: t.password }),
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    application_name: 'pgmesh-check',
  })
  client.on('error', () => undefined)
  const abort = () => void client.end().catch(() => undefined)
  signal?.addEventListener('abort', abort, { once: true })
  try {
    await client.connect()
    const r = await client.query<{ recovery: boolean; timeline: number | null; lag: string | null }>(
      PROBE_SQL,
    )
    const row = r.rows[0]
    if (row === undefined) throw new Error('no row')
    return {
      reachable: true,
      writable: row.recovery === false,
      timeline: row.timeline,
      lagBytes: row.lag === null ? null : Number(row.lag),
      error: null,
    }
  } catch (e) {
    return {
      reachable: false,
      writable: false,
      timeline: null,
      lagBytes: null,
      error: e instanceof Error ? e.message : String(e),
    }
  } finally {
    signal?.removeEventListener('abort', abort)
    await client.end().catch(() => undefined)
  }
}
