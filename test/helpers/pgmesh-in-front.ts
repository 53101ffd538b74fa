import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { BackendsViewSchema } from '@pgmesh/protocol'
import { startMeshNode, type TestNode } from './mesh-cluster.js'
import { type Sandbox, waitFor } from './processes.js'
import { TESTBED_PASSWORD, type Testbed } from './testbed.js'

/**
 * One pgmesh node in front of the Patroni testbed with a single `write` listener (role primary)
 * on `port`, the benchmarks' set-up; resolves once the node agrees on the testbed's leader.
 */
export async function startPgmeshInFront(
  sb: Sandbox,
  tb: Testbed,
  opts: {
    readonly id: string
    readonly port: number
    readonly cli?: string
    /** a second write listener on this port with `dataPath: kernel` */
    readonly kernelPort?: number
  },
): Promise<TestNode> {
  const pw = join(sb.dir, 'pgpass')
  await writeFile(pw, `${TESTBED_PASSWORD}\n`, { mode: 0o600 })
  const cfg = join(sb.dir, `${opts.id}.yaml`)
  await writeFile(
    cfg,
    [
      'cluster:',
      `  databaseChecks: { passwordFile: ${pw} }`,
      '  databases:',
      ...tb.nodes.map(
        (n) => `    - { name: ${n.name}, address: "127.0.0.1:${n.pgPort}", patroniUrl: "${n.apiUrl}" }`,
      ),
      '  listeners:',
      `    - { name: write, bind: "127.0.0.1:${opts.port}", role: primary }`,
      ...(opts.kernelPort === undefined
        ? []
        : [`    - { name: fast, bind: "127.0.0.1:${opts.kernelPort}", role: primary, dataPath: kernel }`]),
      '',
    ].join('\n'),
  )
  const node = await startMeshNode(sb, {
    id: opts.id,
    configFile: cfg,
    logLevel: 'warn',
    ...(opts.cli === undefined ? {} : { cli: opts.cli }),
  })
  const leader = await tb.leader()
  await waitFor(`${opts.id} to agree on the primary`, 30_000, async () => {
    const res = await fetch(`${node.apiUrl}/v1/backends`).catch(() => null)
    if (res === null) return undefined
    const v = BackendsViewSchema.parse(await res.json())
    return v.agreed.primary === leader ? true : undefined
  })
  return node
}

const runFile = promisify(execFile)

/** Waits until `psql -c 'select 1'` through `port` (a proxy, or the database itself) succeeds. */
export async function waitUntilPsqlAnswers(what: string, port: number): Promise<void> {
  const env = { ...process.env, PGPASSWORD: TESTBED_PASSWORD }
  const argv = ['-h', '127.0.0.1', '-U', 'postgres', '-p', String(port), '-c', 'select 1', 'postgres']
  await waitFor(
    what,
    30_000,
    async () =>
      (await runFile('psql', argv, { env, timeout: 5_000 }).catch(() => null)) === null ? undefined : true,
    500,
  )
}
