import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { canRunNetns, NetnsLab } from './helpers/netns-lab.js'
import { exited, isRunning, Sandbox, waitFor } from './helpers/processes.js'
import { NODE_NAMES, VIP, VipLab, watchHolders } from './helpers/vip-lab.js'

/** the election's default lease: the longest two holders may overlap, by design zero */
const LEASE_MS = 250

const skip = canRunNetns()

describe('VIP in network namespaces: 3 nodes (110/105/100), linux driver, a client on the VIP', {
  skip: skip ?? false,
  timeout: 240_000,
}, () => {
  const sb = new Sandbox()
  const lab = new NetnsLab()
  let vl: VipLab

  before(async () => {
    await sb.init('vip')
    await lab.create([...NODE_NAMES, 'client'])
    vl = new VipLab(sb, lab)
    await vl.init()
    for (const n of NODE_NAMES) vl.startService(n)
    for (const n of NODE_NAMES) vl.startNode(n)
    vl.startClient()
  })

  after(async () => {
    await sb.cleanup()
    await lab.destroy()
  })

  it('the 110 node becomes MASTER, holds the VIP alone, and answers the client', async () => {
    const t0 = Date.now()
    await waitFor('n1 to answer the client on the VIP', 30_000, () => vl.servedBy('n1', t0), 100)
    assert.deepEqual(await vl.holders(), ['n1'])
    assert.equal(await vl.masterStatus('n1'), 200)
    assert.equal(await vl.masterStatus('n2'), 503)
    // n2's view follows gossip: wait for n1's heartbeat that carries its passing check
    const s = await waitFor('n2 to see n1 as MASTER at 110', 5_000, async () => {
      const st = await vl.status('n2')
      const n1 = st.members.find((m) => m.id === 'n1')
      return st.election.master === 'n1' && n1?.election?.effectivePriority === 110 ? st : undefined
    })
    assert.equal(s.election.quorum, 'majority')
    assert.deepEqual(s.election.voters?.voters, ['n1', 'n2', 'n3'])
    const self = s.members.find((m) => m.id === 'n1')
    assert.equal(self?.election?.holder, true)
    assert.equal(self?.election?.effectivePriority, 110)
  })

  it('kill -9 of the MASTER: the 105 node answers', async () => {
    const killedAt = Date.now()
    vl.nodes.get('n1')?.kill('SIGKILL')
    const servedAt = await waitFor('n2 to answer on the VIP', 20_000, () => vl.servedBy('n2', killedAt), 50)
    assert.ok((await vl.lab.addresses('n2')).includes(VIP))
    assert.equal(await vl.masterStatus('n2'), 200)
    process.stdout.write(`# MASTER killed -> client served by n2 after ${servedAt - killedAt} ms\n`)
  })

  it('the 110 node restarts: it removes the VIP its killed predecessor left and takes the VIP back', async () => {
    // a killed process cannot remove its address; the restarted node must (or two hosts answer ARP)
    assert.ok((await vl.lab.addresses('n1')).includes(VIP), 'the killed node left its VIP behind')
    const restartedAt = Date.now()
    vl.startNode('n1')
    await waitFor('n1 to answer on the VIP again', 30_000, () => vl.servedBy('n1', restartedAt), 100)
    await waitFor('n1 to be the only holder', 5_000, async () =>
      (await vl.holders()).join() === 'n1' ? true : undefined,
    )
    process.stdout.write(`# restarted 110 node served again after ${Date.now() - restartedAt} ms\n`)
  })

  it("the MASTER's tracked check fails: the VIP moves; the check recovers: it moves back", async () => {
    const svc = vl.services.get('n1')
    assert.ok(svc !== undefined)
    const failedAt = Date.now()
    svc.kill('SIGHUP') // stops listening
    await waitFor('n2 to answer on the VIP', 20_000, () => vl.servedBy('n2', failedAt), 50)
    const s = await vl.status('n2')
    const n1 = s.members.find((m) => m.id === 'n1')
    assert.equal(n1?.election?.effectivePriority, 90, 'n1 is 110 - 20 while its check fails')
    assert.deepEqual(n1?.election?.failingChecks, ['service'])
    assert.deepEqual(await vl.holders(), ['n2'])
    const recoveredAt = Date.now()
    svc.kill('SIGUSR2')
    await waitFor('n1 to answer on the VIP again', 20_000, () => vl.servedBy('n1', recoveredAt), 50)
  })

  it('the MASTER is cut off the bridge: it releases the VIP, one node of the majority takes it, never two at once', async () => {
    await waitFor('n1 to be the only holder', 10_000, async () =>
      (await vl.holders()).join() === 'n1' ? true : undefined,
    )
    const watch = watchHolders(vl)
    const cutAt = Date.now()
    await lab.detach('n1')
    await waitFor('n1 to release and n2 to hold the VIP', 20_000, async () =>
      (await vl.holders()).join() === 'n2' ? true : undefined,
    )
    await waitFor('n2 to answer the client', 10_000, () => vl.servedBy('n2', cutAt), 50)
    // the isolated node must stay without the VIP for the whole partition
    await sleep(3_000)
    assert.deepEqual(await vl.holders(), ['n2'])
    assert.ok(isRunning(vl.nodes.get('n1')!), 'the isolated node keeps running')
    const healAt = Date.now()
    await lab.attach('n1')
    await waitFor('one holder after the heal, and the client reaching it', 30_000, async () => {
      const h = await vl.holders()
      if (h.length !== 1) return undefined
      return (await vl.servedBy(h[0]!, healAt)) === undefined ? undefined : h[0]
    })
    // the next test needs the whole cluster: TCP's retransmission backoff can delay the heal
    await waitFor('every node to list all three alive after the heal', 30_000, async () => {
      for (const n of NODE_NAMES) {
        const st = await vl.status(n)
        if (st.members.filter((m) => m.state === 'alive').length !== 3) return undefined
      }
      return true
    })
    const w = await watch.stop()
    process.stdout.write(
      `# partition: ${w.samples} samples of ip addr in every namespace, longest two-holder stretch ${w.maxOverlapMs} ms\n`,
    )
    assert.ok(w.samples > 50, `only ${w.samples} samples`)
    assert.ok(
      w.maxOverlapMs <= LEASE_MS,
      `${w.worst.join(' and ')} held the VIP together for ${w.maxOverlapMs} ms (bound ${LEASE_MS} ms)`,
    )
  })

  it('SIGTERM of the MASTER hands the VIP over at once', async () => {
    // after the heal the 110 node preempts again: wait for it to settle there
    await waitFor('n1 to hold the VIP again after the heal', 20_000, async () =>
      (await vl.holders()).join() === 'n1' && (await vl.masterStatus('n1')) === 200 ? true : undefined,
    )
    const master = 'n1'
    const p = vl.nodes.get(master)!
    const stoppedAt = Date.now()
    p.kill('SIGTERM')
    assert.equal(await exited(p, 15_000), 0)
    assert.ok(!(await vl.lab.addresses(master)).includes(VIP), 'a stopped node must not keep the VIP')
    const next = await waitFor('another node to hold the VIP', 10_000, async () => {
      const now = await vl.holders()
      return now.length === 1 && now[0] !== master ? now[0] : undefined
    })
    await waitFor(`${next} to answer the client`, 10_000, () => vl.servedBy(next!, stoppedAt), 50)
    process.stdout.write(`# graceful stop of ${master}: ${next} serves after ${Date.now() - stoppedAt} ms\n`)
  })
})
