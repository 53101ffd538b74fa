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
  /**
   * WAL position in bytes: where a primary writes (`pg_current_wal_lsn()`), what a replica has
   * replayed; the monitor measures a replica against the primary with it (absent: unknown)
   */
  readonly walLsn?: number | null
  readonly error: string | null
}

// A primary's timeline is in its current WAL file name; a replica reports the one it receives.
const PROBE_SQL = `SELECT pg_is_in_recovery() AS recovery,
  CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1)
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline,
  CASE WHEN pg_is_in_recovery()
       THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint END AS lag,
  pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
                  '0/0')::text AS lsn`

/**
 * One database's check connection, kept open between probes: a check is then one query, not a
 * backend fork per interval (at 3 pgmesh nodes × 3 databases × 4/s that was 36 connections a
 * second), and a loaded server is not marked down for being slow to fork. Any error or timeout
 * drops the connection; the next probe opens a new one, so a restarted server is seen at once.
 */
export class PostgresProber {
  #client: pg.Client | null = null
  #closed = false

  constructor(private readonly target: PostgresTarget) {}

  /** Never throws. */
  async probe(timeoutMs: number, signal?: AbortSignal): Promise<PostgresObservation> {
    if (this.#closed || signal?.aborted === true) return unreachable('check stopped')
    let stoppedBy: string | null = null
    const stop = (why: string) => () => {
      stoppedBy = why
      this.#drop()
    }
    const abort = stop('check stopped')
    signal?.addEventListener('abort', abort, { once: true })
    const timer = setTimeout(stop(`no answer within ${timeoutMs} ms`), timeoutMs)
    try {
      const client = this.#client ?? (await this.#connect(timeoutMs))
      const r = await client.query<{
        recovery: boolean
        timeline: number | null
        lag: string | null
        lsn: string | null
      }>(PROBE_SQL)
      const row = r.rows[0]
      if (row === undefined) throw new Error('no row')
      return {
        reachable: true,
        writable: row.recovery === false,
        timeline: row.timeline,
        lagBytes: row.lag === null ? null : Number(row.lag),
        walLsn: row.lsn === null ? null : Number(row.lsn),
        error: null,
      }
    } catch (e) {
      this.#drop()
      return unreachable(stoppedBy ?? (e instanceof Error ? e.message : String(e)))
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', abort)
    }
  }

  close(): void {
    this.#closed = true
    this.#drop()
  }

  async #connect(timeoutMs: number): Promise<pg.Client> {
    const t = this.target
    const client = new pg.Client({
      host: t.host,
      port: t.port,
      user: t.user,
      database: t.database,
      ...(t.password === undefined ? {} : { password: t.password }),
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      keepAlive: true,
      application_name: 'pgmesh-check',
    })
    // a broken connection surfaces here between probes; the next probe reconnects
    client.on('error', () => {
      if (this.#client === client) this.#client = null
    })
    client.on('end', () => {
      if (this.#client === client) this.#client = null
    })
    this.#client = client
    try {
      await client.connect()
    } catch (e) {
      if (this.#client === client) this.#client = null
      void client.end().catch(() => undefined)
      throw e
    }
    return client
  }

  #drop(): void {
    const c = this.#client
    this.#client = null
    if (c !== null) void c.end().catch(() => undefined)
  }
}

function unreachable(error: string): PostgresObservation {
  return { reachable: false, writable: false, timeline: null, lagBytes: null, error }
}

/** A one-off probe on its own connection, closed after. Never throws. */
export async function probePostgres(
  t: PostgresTarget,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<PostgresObservation> {
  const prober = new PostgresProber(t)
  try {
    return await prober.probe(timeoutMs, signal)
  } finally {
    prober.close()
  }
}
