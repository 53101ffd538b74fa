/**
 * What the traffic policy costs on the connection rate: one pgmesh node with the same `servers`
 * listener twice, without a policy and with a 1,000-entry allow list + per-source limits + a stick
 * table; HAProxy 2.6 (Debian's package) with the same two listeners (an ACL from a 1,000-line
 * file, a stick table tracking conn_cur and conn_rate with reject rules, `stick on src`). Clients
 * connect from 16 loopback sources (127.0.0.10-25), read the backend's one byte and close.
 * Usage: flock /work/bench.lock node --conditions=source --import tsx test/bench/policy.bench.ts [--runs 3] [--conns 3000] [--clients 16]
 * (needs `npm run build`: the node runs from mesh-node/dist)
 */
import { writeFile } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ListenerConfigSchema } from '@pgmesh/protocol'
import { ListenerPolicy } from '../../mesh-node/src/policy/listener-policy.js'
import { fetchStatus, startMeshNode } from '../helpers/mesh-cluster.js'
import { freePort, Sandbox, waitFor } from '../helpers/processes.js'

const { values } = parseArgs({
  options: { runs: { type: 'string' }, conns: { type: 'string' }, clients: { type: 'string' } },
})
const runs = Number(values.runs ?? '3')
const conns = Number(values.conns ?? '3000')
const clients = Number(values.clients ?? '16')
const sources = Array.from({ length: clients }, (_, i) => `127.0.0.${10 + i}`)

const greeter = createServer((s) => {
  s.on('error', () => undefined)
  s.end('x')
})
await new Promise<void>((r) => greeter.listen(0, '127.0.0.1', r))
const backend = (greeter.address() as { port: number }).port

/** 999 prefixes in 10.0.0.0/8 that no client matches, then the one that lets the clients in. */
const allow = [
  ...Array.from({ length: 999 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`),
  '127.0.0.0/24',
]

/**
 * The decision alone, in this process: admit + stick pick + release per connection with the same
 * policy, over 4,096 distinct sources in the allow list's prefixes, against the cost of a connection measured below.
 */
function decisionCost(): number {
  const policy = new ListenerPolicy(
    ListenerConfigSchema.parse({
      name: 'micro',
      bind: '127.0.0.1:1',
      role: 'servers',
      servers: [{ address: '127.0.0.1:2' }],
      allow,
      limits: { maxConnPerSource: 10000, ratePerSource: 1000000, burst: 1000000 },
      stick: { on: 'source' },
    }),
  )
  // each matches one of the 999 /24 entries, 24 levels down the trie
  const addrs = Array.from(
    { length: 4096 },
    (_, i) => `10.${((i % 999) >> 8) & 255}.${(i % 999) & 255}.${i >> 8}`,
  )
  const cands = [{ id: 'a' }, { id: 'b' }]
  const n = 400_000
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const v = policy.admit(addrs[i & 4095]!, i / 1000)
    if (!v.ok) throw new Error('refused')
    policy.pick(v.source, cands, i / 1000, () => cands[i & 1]!)
    policy.release(v.source)
  }
  return ((performance.now() - t0) * 1e6) / n
}
const nsPerDecision = decisionCost()
process.stdout.write(
  `policy decision (admit + pick + release, 1,000-entry allow list): ${nsPerDecision.toFixed(0)} ns\n`,
)

const sb = new Sandbox()
await sb.init('policybench')
const ports = {
  pgPlain: await freePort(),
  pgPolicy: await freePort(),
  haPlain: await freePort(),
  haPolicy: await freePort(),
}
const config = join(sb.dir, 'pgmesh.yaml')
const listener = (name: string, port: number, extra: string[]) => [
  `    - name: ${name}`,
  `      bind: "127.0.0.1:${port}"`,
  '      role: servers',
  '      maxconn: 10000',
  `      servers: [{ address: "127.0.0.1:${backend}", maxconn: 10000 }]`,
  ...extra,
]
await writeFile(
  config,
  [
    'cluster:',
    '  listeners:',
    ...listener('plain', ports.pgPlain, []),
    ...listener('policy', ports.pgPolicy, [
      `      allow: [${allow.map((a) => `"${a}"`).join(', ')}]`,
      '      limits: { maxConnPerSource: 10000, ratePerSource: 1000000, burst: 1000000 }',
      '      stick: { on: source, ttlMs: 1800000, maxEntries: 10000 }',
    ]),
    '',
  ].join('\n'),
)
const node = await startMeshNode(sb, { id: 'bench', configFile: config, logLevel: 'warn' })
await waitFor('pgmesh listeners', 20_000, async () =>
  (await fetchStatus(node)).listeners.length === 2 ? true : undefined,
)

const aclFile = join(sb.dir, 'allow.lst')
await writeFile(aclFile, `${allow.join('\n')}\n`)
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
    'listen plain',
    `  bind 127.0.0.1:${ports.haPlain}`,
    `  server s1 127.0.0.1:${backend} maxconn 4000`,
    'listen policy',
    `  bind 127.0.0.1:${ports.haPolicy}`,
    '  stick-table type ip size 10k expire 30m store conn_cur,conn_rate(1s)',
    `  tcp-request connection reject unless { src -f ${aclFile} }`,
    '  tcp-request connection track-sc0 src',
    '  tcp-request connection reject if { sc0_conn_cur gt 10000 } || { sc0_conn_rate gt 1000000 }',
    '  stick on src',
    `  server s1 127.0.0.1:${backend} maxconn 4000`,
    '',
  ].join('\n'),
)
sb.spawnCommand('haproxy', ['-db', '-f', haCfg], 'haproxy.log')

function connectOnce(port: number, from: string): Promise<void> {
  return new Promise((done, fail) => {
    const c = connect({ host: '127.0.0.1', port, localAddress: from })
    c.on('error', fail)
    c.on('data', () => undefined)
    c.on('close', () => done())
  })
}
await waitFor('haproxy', 10_000, async () => {
  try {
    await connectOnce(ports.haPolicy, sources[0]!)
    return true
  } catch {
    return undefined
  }
})

async function connRate(port: number): Promise<number> {
  let left = conns
  const t0 = performance.now()
  await Promise.all(
    sources.map(async (from) => {
      while (left > 0) {
        left--
        await connectOnce(port, from)
      }
    }),
  )
  return conns / ((performance.now() - t0) / 1000)
}

const paths = {
  'pgmesh plain': ports.pgPlain,
  'pgmesh policy': ports.pgPolicy,
  'haproxy plain': ports.haPlain,
  'haproxy policy': ports.haPolicy,
}
const results: Record<string, number[]> = {}
let refused = -1
try {
  for (let r = 0; r < runs; r++) {
    for (const [name, port] of Object.entries(paths)) {
      const res = results[name] ?? []
      results[name] = res
      res.push(await connRate(port))
      process.stdout.write(`${name} run ${r + 1}: ${res.at(-1)!.toFixed(0)} conn/s\n`)
    }
  }
  const p = (await fetchStatus(node)).listeners.find((l) => l.name === 'policy')?.policy
  refused = p === undefined ? -1 : Object.values(p.refused).reduce((a, b) => a + b, 0)
} finally {
  await sb.cleanup()
  greeter.close()
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const range = (xs: number[]) =>
  `${med(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`
const base = (name: string) => (name.startsWith('pgmesh') ? 'pgmesh plain' : 'haproxy plain')
const lines = [
  '| path | connections/s | × same proxy without policy |',
  '|---|---|---|',
  ...Object.entries(results).map(
    ([name, r]) => `| ${name} | ${range(r)} | ${(med(r) / med(results[base(name)]!)).toFixed(2)} |`,
  ),
]
process.stdout.write(
  `\n${new Date().toISOString()} on ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ${runs} runs, ${conns} connections over ${clients} sources; pgmesh policy refusals: ${refused}; one policy decision ${nsPerDecision.toFixed(0)} ns = ${((nsPerDecision / 1e9) * med(results['pgmesh plain']!) * 100).toFixed(2)} % of a connection's time at the plain listener's rate\n${lines.join('\n')}\n`,
)
