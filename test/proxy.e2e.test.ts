import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fetchStatus, startMeshNode, type TestNode } from './helpers/mesh-cluster.js'
import { exited, freePort, isRunning, Sandbox, waitFor } from './helpers/processes.js'

/** Backends in the test process: each greets with its name, then echoes. */
async function echoServer(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined)
    s.write(`${name}\n`)
    s.pipe(s)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, port: (server.address() as { port: number }).port }
}

/** An open client connection with a line reader. */
async function open(port: number): Promise<{ sock: Socket; lines: string[]; closed: Promise<void> }> {
  const sock = connect({ host: '127.0.0.1', port })
  const lines: string[] = []
  let buf = ''
  sock.setEncoding('utf8')
  sock.on('data', (d: string) => {
    buf += d
    const parts = buf.split('\n')
    buf = parts.pop() ?? ''
    lines.push(...parts)
  })
  sock.on('error', () => undefined)
  const closed = new Promise<void>((r) => sock.once('close', () => r()))
  await new Promise<void>((r, f) => {
    sock.once('connect', r)
    sock.once('error', f)
  })
  return { sock, lines, closed }
}

async function firstLine(port: number): Promise<string> {
  const c = await open(port)
  await waitFor('a greeting', 5_000, async () => c.lines[0])
  c.sock.destroy()
  return c.lines[0]!
}

describe('TCP proxy in a node: listeners from the config, reload, drain', { timeout: 120_000 }, () => {
  const sb = new Sandbox()
  const servers: Server[] = []
  let a = 0
  let b = 0
  let writePort = 0
  let extraPort = 0
  let config = ''
  let node: TestNode

  const listenersYaml = (balance: string, extra: boolean) =>
    [
      'cluster:',
      '  listeners:',
      '    - name: write',
      `      bind: "127.0.0.1:${writePort}"`,
      '      role: servers',
      `      balance: ${balance}`,
      '      drainTimeoutMs: 5000',
      '      servers:',
      `        - { address: "127.0.0.1:${a}" }`,
      `        - { address: "127.0.0.1:${b}" }`,
      ...(extra
        ? [
            '    - name: extra',
            `      bind: "127.0.0.1:${extraPort}"`,
            '      role: servers',
            '      servers:',
            `        - { address: "127.0.0.1:${b}" }`,
          ]
        : []),
      '',
    ].join('\n')

  before(async () => {
    await sb.init('proxy')
    const sa = await echoServer('a')
    const sbk = await echoServer('b')
    servers.push(sa.server, sbk.server)
    a = sa.port
    b = sbk.port
    writePort = await freePort()
    extraPort = await freePort()
    config = join(sb.dir, 'proxy.yaml')
    await writeFile(config, listenersYaml('roundrobin', false))
    node = await startMeshNode(sb, { id: 'p1', configFile: config })
    await waitFor('the listener', 20_000, async () =>
      (await fetchStatus(node)).listeners.length === 1 ? true : undefined,
    )
  })

  after(async () => {
    await sb.cleanup()
    for (const s of servers) await new Promise((r) => s.close(r))
  })

  it('spreads connections over the servers and counts them per backend', async () => {
    const got = []
    for (let i = 0; i < 4; i++) got.push(await firstLine(writePort))
    assert.deepEqual(got.sort(), ['a', 'a', 'b', 'b'])
    const s = await fetchStatus(node)
    const l = s.listeners.find((x) => x.name === 'write')
    assert.ok(l !== undefined)
    assert.ok(l.total >= 4)
    assert.deepEqual(l.backends.map((x) => x.id).sort(), [`127.0.0.1:${a}`, `127.0.0.1:${b}`].sort())
  })

  it('a reload (SIGHUP) adds a listener and changes the balance; an established session survives', async () => {
    const long = await open(writePort)
    await waitFor('greeting', 5_000, async () => long.lines[0])
    long.sock.write('before\n')
    await waitFor('echo before', 5_000, async () => (long.lines.includes('before') ? true : undefined))

    await writeFile(config, listenersYaml('first', true))
    node.proc.kill('SIGHUP')
    await waitFor('the second listener', 10_000, async () =>
      (await fetchStatus(node)).listeners.length === 2 ? true : undefined,
    )
    assert.equal(await firstLine(extraPort), 'b')
    for (let i = 0; i < 3; i++)
      assert.equal(await firstLine(writePort), 'a', 'balance first: always the first server')

    long.sock.write('after\n')
    await waitFor('echo after the reload', 5_000, async () =>
      long.lines.includes('after') ? true : undefined,
    )
    long.sock.destroy()
  })

  it('an invalid reload is refused and changes nothing', async () => {
    await writeFile(config, 'cluster:\n  listeners:\n    - name: broken\n      role: servers\n')
    node.proc.kill('SIGHUP')
    await sleep(500)
    assert.ok(isRunning(node.proc))
    const s = await fetchStatus(node)
    assert.deepEqual(s.listeners.map((l) => l.name).sort(), ['extra', 'write'])
  })

  it('SIGTERM drains: new connections are refused, an established session finishes, then the node exits', async () => {
    const long = await open(writePort)
    await waitFor('greeting', 5_000, async () => long.lines[0])
    node.proc.kill('SIGTERM')
    await waitFor('the listener to stop accepting', 5_000, async () => {
      try {
        const c = await open(writePort)
        c.sock.destroy()
        return undefined
      } catch {
        return true
      }
    })
    assert.ok(isRunning(node.proc), 'the node waits for the established session')
    long.sock.write('still here\n')
    await waitFor('echo while draining', 5_000, async () =>
      long.lines.includes('still here') ? true : undefined,
    )
    long.sock.end()
    await long.closed
    assert.equal(await exited(node.proc, 10_000), 0)
  })
})
