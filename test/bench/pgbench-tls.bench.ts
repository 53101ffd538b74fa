/**
 * pgbench over TLS against the project's Patroni testbed (ssl=on, certificates made by openssl at
 * start), in one run, path by path:
 *   - pgmesh terminating TLS and re-encrypting to PostgreSQL (backend verify-full)
 *   - pgmesh terminating TLS, plain to PostgreSQL
 *   - PgBouncer (Debian) doing the same two (session pooling, the transparent-proxy equivalent)
 *   - HAProxy 2.6 (Percona config) passing TLS through to PostgreSQL
 *   - direct: pgbench with TLS straight to PostgreSQL
 * `pgbench -S` TPS at `--clients` (16), and TLS handshakes per second (`pgbench -C -S`, a new TLS
 * connection per transaction). Every TLS client uses sslmode=require and channel_binding=disable
 * (binding cannot pass a terminating proxy: docs/tls.md). pgbench 15 cannot negotiate PostgreSQL
 * 17's direct TLS, so that path is covered by test/tls.e2e.test.ts, not measured here.
 * Usage (root, under flock /work/bench.lock): node --conditions=source --import tsx test/bench/pgbench-tls.bench.ts [--runs 1] [--seconds 10] [--clients 16]
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises'
import { cpus, tmpdir, totalmem, userInfo } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { makeCa, makeServerCert } from '../../mesh-node/src/tls/test-certs.js'
import { startHaproxyPercona } from '../helpers/haproxy-percona.js'
import { startMeshNode } from '../helpers/mesh-cluster.js'
import { freePort, Sandbox, waitFor } from '../helpers/processes.js'
import { TESTBED_PASSWORD, Testbed } from '../helpers/testbed.js'

const run = promisify(execFile)
const { values } = parseArgs({
  options: { runs: { type: 'string' }, seconds: { type: 'string' }, clients: { type: 'string' } },
})
const runs = Number(values.runs ?? '1')
const seconds = Number(values.seconds ?? '10')
const clients = Number(values.clients ?? '16')

const sb = new Sandbox()
await sb.init('pgbench-tls')
const certs = join(sb.dir, 'certs')
await mkdir(certs)
const ca = await makeCa(certs)
const dbCert = await makeServerCert(certs, ca, 'db')
const edgeCert = await makeServerCert(certs, ca, 'edge')
const tb = await Testbed.up(join(tmpdir(), `pgmesh-tb-${randomBytes(4).toString('hex')}`), {
  TB_SSL_CERT: dbCert.cert,
  TB_SSL_KEY: dbCert.key,
})
const tlsEnv = {
  ...process.env,
  PGPASSWORD: TESTBED_PASSWORD,
  PGSSLMODE: 'require',
  PGCHANNELBINDING: 'disable',
}

/** PgBouncer refuses to run as root: it runs as the testbed's PostgreSQL user, from its own directory. */
async function startPgbouncer(name: string, port: number, leaderPort: number, serverTls: boolean) {
  const dir = join(sb.dir, name)
  await mkdir(dir)
  await chmod(sb.dir, 0o755)
  const asRoot = userInfo().uid === 0
  const pg = asRoot ? await run('id', ['-u', 'postgres']).then((r) => Number(r.stdout.trim())) : -1
  const ini = join(dir, 'pgbouncer.ini')
  const users = join(dir, 'userlist.txt')
  await writeFile(users, `"postgres" "${TESTBED_PASSWORD}"\n`, { mode: 0o600 })
  await writeFile(
    ini,
    [
      '[databases]',
      `postgres = host=127.0.0.1 port=${leaderPort} dbname=postgres`,
      '[pgbouncer]',
      `listen_addr = 127.0.0.1`,
      `listen_port = ${port}`,
      `unix_socket_dir =`,
      'auth_type = scram-sha-256',
      `auth_file = ${users}`,
      'pool_mode = session',
      'max_client_conn = 200',
      'default_pool_size = 100',
      `client_tls_sslmode = require`,
      `client_tls_cert_file = ${edgeCert.cert}`,
      `client_tls_key_file = ${edgeCert.key}`,
      ...(serverTls
        ? ['server_tls_sslmode = verify-full', `server_tls_ca_file = ${ca.cert}`]
        : ['server_tls_sslmode = disable']),
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  )
  if (asRoot) {
    for (const f of [dir, ini, users, certs, edgeCert.cert, edgeCert.key, ca.cert]) await chown(f, pg, pg)
  }
  const argv = asRoot ? ['--reuid=postgres', '--regid=postgres', '--init-groups', 'pgbouncer', ini] : [ini]
  sb.spawnCommand(asRoot ? 'setpriv' : 'pgbouncer', argv, `${name}.log`)
}

try {
  const leader = await tb.leader()
  const leaderPort = tb.node(leader).pgPort
  const ports = {
    reencrypt: await freePort(),
    plainBackend: await freePort(),
    haproxy: await freePort(),
    pgbReencrypt: await freePort(),
    pgbPlain: await freePort(),
  }
  const pw = join(sb.dir, 'pgpass')
  await writeFile(pw, `${TESTBED_PASSWORD}\n`, { mode: 0o600 })
  const cfg = join(sb.dir, 'bench.yaml')
  const tls = `certFile: ${edgeCert.cert}, keyFile: ${edgeCert.key}`
  await writeFile(
    cfg,
    [
      'cluster:',
      `  databaseChecks: { passwordFile: ${pw} }`,
      '  databases:',
      ...tb.nodes.map((n) => `    - { name: ${n.name}, address: "127.0.0.1:${n.pgPort}" }`),
      '  listeners:',
      `    - { name: reencrypt, bind: "127.0.0.1:${ports.reencrypt}", role: primary, tls: { mode: terminate, ${tls}, backend: verify-full, backendCaFile: ${ca.cert} } }`,
      `    - { name: plain, bind: "127.0.0.1:${ports.plainBackend}", role: primary, tls: { mode: terminate, ${tls} } }`,
      '',
    ].join('\n'),
  )
  await startMeshNode(sb, { id: 'bench', configFile: cfg, logLevel: 'warn' })
  await startHaproxyPercona(sb, tb, ports.haproxy)
  await startPgbouncer('pgb-reencrypt', ports.pgbReencrypt, leaderPort, true)
  await startPgbouncer('pgb-plain', ports.pgbPlain, leaderPort, false)

  const base = ['-h', '127.0.0.1', '-U', 'postgres']
  await run('pgbench', ['-i', '-s', '10', '-q', ...base, '-p', String(leaderPort), 'postgres'], {
    env: tlsEnv,
    timeout: 120_000,
  })
  const paths: Record<string, number> = {
    direct: leaderPort,
    'haproxy-passthrough': ports.haproxy,
    'pgbouncer-reencrypt': ports.pgbReencrypt,
    'pgbouncer-plain': ports.pgbPlain,
    'pgmesh-reencrypt': ports.reencrypt,
    'pgmesh-plain': ports.plainBackend,
  }
  for (const [name, port] of Object.entries(paths)) {
    await waitFor(`${name} to answer over TLS`, 60_000, async () =>
      (await run('psql', [...base, '-p', String(port), '-Atc', 'select 1', 'postgres'], {
        env: tlsEnv,
        timeout: 5_000,
      }).catch(() => null)) === null
        ? undefined
        : true,
    )
  }

  const results: Record<string, { tps: number[]; conn: number[] }> = {}
  const pgbench = async (port: number, extra: string[]) => {
    const { stdout } = await run(
      'pgbench',
      ['-S', '-j', '2', '-T', String(seconds), ...extra, ...base, '-p', String(port), 'postgres'],
      { env: tlsEnv, timeout: (seconds + 60) * 1000 },
    )
    return Number(/tps = ([\d.]+)/.exec(stdout)?.[1])
  }
  for (let r = 0; r < runs; r++) {
    for (const [name, port] of Object.entries(paths)) {
      const res = results[name] ?? { tps: [], conn: [] }
      results[name] = res
      res.tps.push(await pgbench(port, ['-c', String(clients)]))
      // -C: a new connection (TCP + TLS + SCRAM) per transaction, 4 clients
      res.conn.push(await pgbench(port, ['-C', '-c', '4']))
      process.stdout.write(
        `${name} run ${r + 1}: ${res.tps.at(-1)!.toFixed(0)} tps, ${res.conn.at(-1)!.toFixed(0)} conn/s\n`,
      )
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const ref = (n: string) => results[n]!
  const lines = [
    `| path | TPS -S c${clients} (median) | × PgBouncer same mode | × HAProxy passthrough | × direct | new TLS connections/s (-C c4) |`,
    '|---|---|---|---|---|---|',
  ]
  for (const name of Object.keys(paths)) {
    const x = ref(name)
    const peer =
      name === 'pgmesh-reencrypt' ? 'pgbouncer-reencrypt' : name === 'pgmesh-plain' ? 'pgbouncer-plain' : null
    lines.push(
      `| ${name} | ${med(x.tps).toFixed(0)} | ${peer === null ? '–' : (med(x.tps) / med(ref(peer).tps)).toFixed(2)} | ${(med(x.tps) / med(ref('haproxy-passthrough').tps)).toFixed(2)} | ${(med(x.tps) / med(ref('direct').tps)).toFixed(2)} | ${med(x.conn).toFixed(0)} |`,
    )
  }
  process.stdout.write(
    `\n${new Date().toISOString()} on ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; pgbench -S over TLS, ${runs} run(s) of ${seconds} s, scale 10\n${lines.join('\n')}\n`,
  )
} finally {
  await sb.cleanup()
  await tb.down()
}
