/**
 * The control plane on plain Node, for sites without an edge runtime: the same app as the Worker
 * (deploy/edge/worker.ts), under @hono/node-server.
 *
 *   node control-plane-node.mjs --config control-plane.json [--listen 127.0.0.1:8788]
 */
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { createAdaptorServer } from '@hono/node-server'
import { createControlPlane } from '@pgmesh/control-api'
import { parseHostPort } from '@pgmesh/protocol'

declare const PGMESH_VERSION: string

function log(level: string, msg: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(
    `${JSON.stringify({ level, time: new Date().toISOString(), component: 'control-plane', msg, ...extra })}\n`,
  )
}

function fail(code: string, message: string, issues?: unknown): never {
  process.stderr.write(
    `${code}: ${message}\n${issues === undefined ? '' : `${JSON.stringify(issues, null, 2)}\n`}`,
  )
  process.exit(2)
}

const { values } = parseArgs({
  options: { config: { type: 'string' }, listen: { type: 'string', default: '127.0.0.1:8788' } },
})
if (values.config === undefined) fail('CP_CONFIG_INVALID', '--config FILE is required')
let input: unknown
try {
  input = JSON.parse(readFileSync(values.config, 'utf8'))
} catch (e) {
  fail('CP_CONFIG_INVALID', `${values.config}: ${e instanceof Error ? e.message : String(e)}`)
}
const listen = parseHostPort(values.listen ?? '')
if (!listen.ok) fail(listen.error.code, listen.error.message)
const cp = createControlPlane(input, {
  env: process.env,
  version: PGMESH_VERSION,
  onError: (e) => log('error', 'handler failed', { err: String(e) }),
})
if (!cp.ok) fail(cp.error.code, cp.error.message, cp.error.issues)

const server = createAdaptorServer({
  fetch: cp.value.app.fetch,
  serverOptions: {
    maxHeaderSize: 16 * 1024,
    headersTimeout: 5_000,
    requestTimeout: 10_000,
    keepAliveTimeout: 5_000,
  },
})
server.listen(listen.value.port, listen.value.host, () => {
  const a = server.address() as AddressInfo
  log('info', 'control plane listening', {
    url: `http://${a.address}:${a.port}`,
    nodes: cp.value.config.nodes.length,
  })
})
const stop = () => {
  server.close(() => process.exit(0))
  if ('closeAllConnections' in server) server.closeAllConnections()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
