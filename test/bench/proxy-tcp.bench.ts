/**
 * TCP proxy benchmark: pgmesh's listener, HAProxy 2.6 (mode tcp, Debian's package) and a direct
 * connection, side by side in one run on loopback, against the same backend (a Node server that
 * discards what it reads, or answers one byte and closes):
 *   bulk      MiB/s of one client streaming --bulk-mib MiB through the path (sink backend)
 *   connrate  connections/s: --conn-clients clients each connecting, reading one byte and closing,
 *             --conns connections in all (greeter backend)
 * Usage: node --conditions=source --import tsx test/bench/proxy-tcp.bench.ts [--runs 3] [--bulk-mib 512] [--conns 4000] [--conn-clients 16]
 */
import { writeFile } from 'node:fs/promises'
import { connect, createServer, type Server } from 'node:net'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fetchStatus, startMeshNode } from '../helpers/mesh-cluster.js'
import { freePort, Sandbox, waitFor } from '../helpers/processes.js'

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    'bulk-mib': { type: 'string' },
    conns: { type: 'string' },
    'conn-clients': { type: 'string' },
  },
})
const runs = Number(values.runs ?? '3')
const bulkMiB = Number(values['bulk-mib'] ?? '512')
const conns = Number(values.conns ?? '4000')
const connClients = Number(values['conn-clients'] ?? '16')

async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; port: number }> {
  const server = createServer({}, handler)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, port: (server.address() as { port: number }).port }
}

const sink = await serve((s) => {
  s.on('data', () => undefined)
  s.on('error', () => undefined)
})
const greeter = await serve((s) => {
  s.on('error', () => undefined)
  s.end('x')
})

const sb = new Sandbox()
await sb.init('proxybench')
const ports = {
  pgmeshBulk: await freePort(),
  pgmeshConn: await freePort(),
  haproxyBulk: await freePort(),
  haproxyConn: await freePort(),
}

const config = join(sb.dir, 'pgmesh.yaml')
await writeFile(
  config,
  [
    'cluster:',
    '  listeners:',
    '    - name: bulk',
    `      bind: "127.0.0.1:${ports.pgmeshBulk}"`,
    '      role: servers',
    `      servers: [{ address: "127.0.0.1:${sink.port}" }]`,
    '    - name: conn',
    `      bind: "127.0.0.1:${ports.pgmeshConn}"`,
    '      role: servers',
    '      maxconn: 10000',
    `      servers: [{ address: "127.0.0.1:${greeter.port}", maxconn: 10000 }]`,
    '',
  ].join('\n'),
)
const node = await startMeshNode(sb, { id: 'bench', configFile: config, logLevel: 'warn' })
await waitFor('pgmesh listeners', 20_000, async () =>
  (await fetchStatus(node)).listeners.length === 2 ? true : undefined,
)

const haCfg = join(sb.dir, 'haproxy.cfg')
await writeFile(
  haCfg,
  [
    'global',
    '  maxconn 8000',
    'defaults',
    '  mode tcp',
    '  timeout connect 3s',
    '  timeout client 30m',
    '  timeout server 30m',
    'listen bulk',
    `  bind 127.0.0.1:${ports.haproxyBulk}`,
    `  server s1 127.0.0.1:${sink.port}`,
    'listen conn',
    `  bind 127.0.0.1:${ports.haproxyConn}`,
    `  server s1 127.0.0.1:${greeter.port} maxconn 4000`,
    '',
  ].join('\n'),
)
sb.spawnCommand('haproxy', ['-db', '-f', haCfg], 'haproxy.log')
await waitFor('haproxy', 10_000, async () => {
  try {
    await connectOnce(ports.haproxyConn)
    return true
  } catch {
    return undefined
  }
})

function connectOnce(port: number): Promise<void> {
  return new Promise((done, fail) => {
    const c = connect({ host: '127.0.0.1', port })
    c.on('error', fail)
    c.on('data', () => undefined)
    c.on('close', () => done())
  })
}

async function bulk(port: number): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024, 7)
  const total = bulkMiB * 1024 * 1024
  const t0 = performance.now()
  await new Promise<void>((done, fail) => {
    const c = connect({ host: '127.0.0.1', port })
    c.on('error', fail)
    let sent = 0
    const pump = () => {
      while (sent < total) {
        sent += chunk.length
        if (!c.write(chunk)) {
          c.once('drain', pump)
          return
        }
      }
      c.end()
    }
    c.on('connect', pump)
    c.on('close', () => done())
  })
  return bulkMiB / ((performance.now() - t0) / 1000)
}

async function connRate(port: number): Promise<number> {
  let left = conns
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: connClients }, async () => {
      while (left > 0) {
        left--
        await connectOnce(port)
      }
    }),
  )
  return conns / ((performance.now() - t0) / 1000)
}

const paths = {
  direct: { bulk: sink.port, conn: greeter.port },
  haproxy: { bulk: ports.haproxyBulk, conn: ports.haproxyConn },
  pgmesh: { bulk: ports.pgmeshBulk, conn: ports.pgmeshConn },
}
const results: Record<string, { bulk: number[]; conn: number[] }> = {}
try {
  for (let r = 0; r < runs; r++) {
    for (const [name, p] of Object.entries(paths)) {
      const res = results[name] ?? { bulk: [], conn: [] }
      results[name] = res
      res.bulk.push(await bulk(p.bulk))
      res.conn.push(await connRate(p.conn))
      process.stdout.write(
        `${name} run ${r + 1}: bulk ${res.bulk.at(-1)!.toFixed(0)} MiB/s, ${res.conn.at(-1)!.toFixed(0)} conn/s\n`,
      )
    }
  }
} finally {
  await sb.cleanup()
  sink.server.close()
  greeter.server.close()
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const range = (xs: number[]) =>
  `${med(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`
const lines = [
  `| path | bulk MiB/s | × direct | connections/s | × HAProxy |`,
  '|---|---|---|---|---|',
  ...Object.entries(results).map(
    ([name, r]) =>
      `| ${name} | ${range(r.bulk)} | ${(med(r.bulk) / med(results.direct!.bulk)).toFixed(2)} | ${range(r.conn)} | ${(med(r.conn) / med(results.haproxy!.conn)).toFixed(2)} |`,
  ),
]
process.stdout.write(
  `\n${new Date().toISOString()} on ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ${runs} runs, bulk ${bulkMiB} MiB, ${conns} connections over ${connClients} clients\n${lines.join('\n')}\n`,
)
