import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { ROOT } from './processes.js'

const run = promisify(execFile)
const SCRIPT = join(ROOT, 'deploy', 'testbed.sh')

export const TESTBED_PASSWORD = 'postgres-pass'

export interface TestbedNode {
  readonly name: string
  readonly pgPort: number
  readonly apiUrl: string
  readonly dir: string
}

async function portFree(port: number): Promise<boolean> {
  return await new Promise((done) => {
    const s = createServer()
    s.once('error', () => done(false))
    s.listen(port, '127.0.0.1', () => s.close(() => done(true)))
  })
}

/** A base port with base..base+2 (PostgreSQL), base+100..+102 (REST) and base+200..+201 (etcd) free. */
async function freePortBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 9_000)
    const ports = [0, 1, 2, 100, 101, 102, 200, 201].map((d) => base + d)
    let ok = true
    for (const p of ports) if (!(await portFree(p))) ok = false
    if (ok) return base
  }
  throw new Error('no free port range for the testbed')
}

/**
 * The project's Patroni testbed (deploy/testbed.sh) on free loopback ports in `dir`: etcd and 3
 * Patroni-managed PostgreSQL 15 nodes. `down()` stops every process it started (by PID).
 */
export class Testbed {
  nodes: TestbedNode[] = []
  readonly #env: NodeJS.ProcessEnv

  private constructor(
    readonly dir: string,
    base: number,
    extraEnv: NodeJS.ProcessEnv = {},
  ) {
    this.#env = {
      ...process.env,
      ...extraEnv,
      TB_PG_PORT: String(base),
      TB_API_PORT: String(base + 100),
      TB_ETCD_PORT: String(base + 200),
      TB_TIMEOUT: '90',
    }
  }

  /** `extraEnv`: testbed settings, e.g. TB_SSL_CERT / TB_SSL_KEY for ssl=on */
  static async up(dir: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Testbed> {
    const tb = new Testbed(dir, await freePortBase(), extraEnv)
    await tb.script(['up', dir], 120_000)
    const env = Object.fromEntries(
      (await readFile(join(dir, 'ports.env'), 'utf8'))
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
    tb.nodes = ['n1', 'n2', 'n3'].map((name) => ({
      name,
      pgPort: Number(env[`${name.toUpperCase()}_PG_PORT`]),
      apiUrl: env[`${name.toUpperCase()}_API_URL`]!,
      dir: join(dir, name),
    }))
    return tb
  }

  async script(args: string[], timeoutMs = 60_000): Promise<string> {
    const { stdout } = await run(SCRIPT, args, { env: this.#env, timeout: timeoutMs, maxBuffer: 4 << 20 })
    return stdout
  }

  node(name: string): TestbedNode {
    const n = this.nodes.find((x) => x.name === name)
    if (n === undefined) throw new Error(`no testbed node ${name}`)
    return n
  }

  async leader(): Promise<string> {
    return (await this.script(['leader', this.dir])).trim()
  }

  /** PID of the node's Patroni process (to SIGSTOP its REST API, say). */
  async patroniPid(name: string): Promise<number> {
    return Number.parseInt(await readFile(join(this.node(name).dir, 'patroni.pid'), 'utf8'), 10)
  }

  /** Planned switchover through the leader's REST API; resolves when it was accepted. */
  async switchover(from: string, to: string): Promise<void> {
    const res = await fetch(`${this.node(from).apiUrl}/switchover`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ leader: from, candidate: to }),
      signal: AbortSignal.timeout(30_000),
    })
    const text = await res.text()
    if (!res.ok) throw new Error(`switchover refused: HTTP ${res.status} ${text}`)
  }

  /**
   * Patroni's maintenance mode (`pause`): Patroni stops managing PostgreSQL, so e.g. a paused WAL
   * replay stays paused. Resolves once every node's Patroni has taken the change.
   */
  async maintenance(on: boolean): Promise<void> {
    const res = await fetch(`${this.nodes[0]!.apiUrl}/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pause: on }),
      signal: AbortSignal.timeout(10_000),
    })
    if (!res.ok) throw new Error(`PATCH /config refused: HTTP ${res.status} ${await res.text()}`)
    const deadline = Date.now() + 20_000
    for (const n of this.nodes) {
      for (;;) {
        const state = await fetch(`${n.apiUrl}/patroni`, { signal: AbortSignal.timeout(5_000) })
          .then((r) => r.json() as Promise<{ pause?: boolean }>)
          .catch(() => ({}) as { pause?: boolean })
        if ((state.pause === true) === on) break
        if (Date.now() > deadline) throw new Error(`${n.name}'s Patroni did not take pause=${on}`)
        await new Promise((r) => setTimeout(r, 200))
      }
    }
  }

  async down(): Promise<void> {
    await this.script(['down', this.dir], 90_000)
  }
}

/** One connection through a listener (or to a database): which server answered, and whether it is in recovery. */
export async function whoAnswers(
  port: number,
  host = '127.0.0.1',
): Promise<{ port: number; recovery: boolean }> {
  const c = new pg.Client({
    host,
    port,
    user: 'postgres',
    password: TESTBED_PASSWORD,
    database: 'postgres',
    connectionTimeoutMillis: 5_000,
    query_timeout: 5_000,
  })
  c.on('error', () => undefined)
  try {
    await c.connect()
    const r = await c.query<{ port: number; recovery: boolean }>(
      'SELECT inet_server_port() AS port, pg_is_in_recovery() AS recovery',
    )
    return r.rows[0]!
  } finally {
    await c.end().catch(() => undefined)
  }
}
