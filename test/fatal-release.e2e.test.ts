import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fetchStatus, startMeshNode, type TestNode } from './helpers/mesh-cluster.js'
import { CLI, exited, Sandbox, waitFor, waitForLogLine } from './helpers/processes.js'

/**
 * The last resort of `pgmesh start`: an exception no handler caught (a bug) still releases the
 * VIP before the process exits with status 1 for systemd to restart it. The fault is injected by a
 * wrapper module that loads the real bundle and, once the node is MASTER, throws from a timer:
 * exactly the path an uncaught error in any callback takes. The exec driver's `stop` script
 * stands for the VIP's release (the linux driver removes the address on the same path).
 */
describe('an uncaught exception on the MASTER', { timeout: 60_000 }, () => {
  const sb = new Sandbox()
  let node: TestNode
  let masterMark = ''
  let stopMark = ''

  before(async () => {
    await sb.init('fatal')
    masterMark = join(sb.dir, 'became-master')
    stopMark = join(sb.dir, 'released')
    const config = join(sb.dir, 'node.yaml')
    await writeFile(
      config,
      [
        'cluster:',
        '  vip:',
        '    driver: exec',
        '    notify:',
        `      master: ['/bin/sh', '-c', 'touch "$0"', '${masterMark}']`,
        // the release is slow on purpose: the process must wait for it before it exits
        `      stop: ['/bin/sh', '-c', 'sleep 0.3; touch "$0"', '${stopMark}']`,
        '',
      ].join('\n'),
    )
    const wrapper = join(sb.dir, 'faulty-cli.mjs')
    await writeFile(
      wrapper,
      [
        "import { existsSync } from 'node:fs'",
        `const mark = ${JSON.stringify(masterMark)}`,
        'const poll = setInterval(() => {',
        '  if (!existsSync(mark)) return',
        '  clearInterval(poll)',
        "  setTimeout(() => { throw new Error('injected fault: a bug no handler catches') }, 200)",
        '}, 50)',
        'poll.unref()',
        `await import(${JSON.stringify(CLI)})`,
        '',
      ].join('\n'),
    )
    node = await startMeshNode(sb, { id: 'n1', configFile: config, cli: wrapper, logLevel: 'info' })
  })
  after(() => sb.cleanup())

  it('releases the VIP (its stop script ran to the end), logs PROCESS_FATAL and exits with status 1', async () => {
    await waitFor('n1 MASTER', 20_000, async () =>
      (await fetchStatus(node)).election.master === 'n1' ? true : undefined,
    )
    // the notify script runs after the node became MASTER, so the status can say so first
    await waitFor('the master script ran', 5_000, async () => (existsSync(masterMark) ? true : undefined))
    const code = await exited(node.proc, 10_000)
    assert.equal(code, 1, 'exit status 1, for systemd to restart the node')
    assert.equal(existsSync(stopMark), true, 'the VIP was released before the process exited')
    await waitForLogLine(sb, 'n1.log', /"code":"PROCESS_FATAL"/)
    await waitForLogLine(sb, 'n1.log', /injected fault/)
  })
})
