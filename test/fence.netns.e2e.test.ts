import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { canRunNetns, ip, NetnsLab } from './helpers/netns-lab.js'
import { CLI, exited, Sandbox, waitFor, waitForLogLine } from './helpers/processes.js'
import { NODE_NAMES, twoHostStretch, VipLab, watchArp, watchKernels } from './helpers/vip-lab.js'

const run = promisify(execFile)

/** the election's default lease */
const LEASE_MS = 250
/**
 * What the kernel may add to the lease on this loaded 2-core VM: the renewal's way through the
 * nft process, the arping interval (20 ms) and the reply's way to the test. The target is 100 ms;
 * the figures each test prints are what was measured.
 */
const BOUND_MS = 150

const skip = canRunNetns()

const last = (replies: readonly { t: number; node: string }[], node: string, before = Infinity) =>
  Math.max(-Infinity, ...replies.filter((r) => r.node === node && r.t < before).map((r) => r.t))
const first = (replies: readonly { t: number; node: string }[], node: string, after: number) =>
  Math.min(Infinity, ...replies.filter((r) => r.node === node && r.t >= after).map((r) => r.t))

async function fenceTables(lab: NetnsLab, name: string): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'exec', lab.host(name).netns, 'nft', 'list', 'tables'], {
    timeout: 10_000,
  })
  return stdout.split('\n').filter((l) => l.includes('pgmesh_fence_'))
}

describe('the kernel fence in network namespaces: 3 nodes, linux driver, a client asking ARP for the VIP', {
  skip: skip ?? false,
  timeout: 300_000,
}, () => {
  const sb = new Sandbox()
  const lab = new NetnsLab()
  let vl: VipLab

  before(async () => {
    await sb.init('fence')
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

  /** every node running (a failed test may have left one stopped), `node` the only one answering */
  const settleOn = async (node: string) => {
    for (const n of NODE_NAMES) {
      const p = vl.nodes.get(n)
      if (p === undefined || p.exitCode !== null || p.signalCode !== null) vl.startNode(n)
    }
    const t0 = Date.now()
    await waitFor(`${node} to answer the client on the VIP`, 40_000, () => vl.servedBy(node, t0), 100)
    await waitFor(`${node} to be the only host answering for the VIP`, 10_000, async () => {
      const answering = []
      for (const n of NODE_NAMES) if ((await vl.vipState(n)).answers) answering.push(n)
      return answering.join() === node ? true : undefined
    })
  }

  it('the MASTER holds the VIP behind its fence, with a live lease; the others have neither', async () => {
    await settleOn('n1')
    // polled: on a loaded machine the MASTER may lose a lease now and then (and take it back)
    const states = await waitFor('n1 fenced with a live lease, n2 and n3 clean', 20_000, async () => {
      const all = await Promise.all(NODE_NAMES.map((n) => vl.vipState(n)))
      return all[0]!.lease && !all[1]!.address && !all[2]!.address ? all : undefined
    })
    assert.deepEqual(states[0], { address: true, fence: true, lease: true, answers: true })
    for (const s of states.slice(1)) {
      assert.deepEqual(s, { address: false, fence: false, lease: false, answers: false })
    }
  })

  it('kill -9 of the MASTER: its host stops answering ARP and TCP within its lease, never with the new MASTER; its address goes by itself; cleanup and restart leave it clean', async () => {
    const arp = await watchArp(vl, 20_000)
    const kernels = watchKernels(vl)
    await waitFor(
      'n1 to answer ARP',
      10_000,
      async () => (arp.replies.some((r) => r.node === 'n1') ? true : undefined),
      20,
    )
    const killedAt = Date.now()
    const n1 = vl.nodes.get('n1')!
    n1.kill('SIGKILL')
    await exited(n1, 5_000)
    const servedAt = await waitFor('n2 to answer on the VIP', 20_000, () => vl.servedBy('n2', killedAt), 50)
    await sleep(1_000)
    const { replies } = await arp.stop()
    const k = await kernels.stop()
    const n1Last = last(replies, 'n1')
    const n2First = first(replies, 'n2', killedAt)
    assert.ok(Number.isFinite(n2First), 'n2 answered ARP after the failover')
    const silentAfter = n1Last - killedAt
    const overlap = Math.max(0, n1Last - n2First)
    const stretch = twoHostStretch(replies)
    const lateTcp = (await vl.answers(killedAt + LEASE_MS + BOUND_MS)).filter((a) => a.node === 'n1')
    process.stdout.write(
      `# kill -9: n1 answered ARP until ${silentAfter} ms after the kill; n2 from ${n2First - killedAt} ms, served TCP after ${servedAt - killedAt} ms; ARP two-host time ${overlap} ms (stretch ${stretch} ms); kernel two-host ${k.maxOverlapMs} ms over ${k.samples} samples\n`,
    )
    assert.ok(
      silentAfter <= LEASE_MS + BOUND_MS,
      `the dead MASTER answered ARP ${silentAfter} ms after the kill`,
    )
    assert.ok(
      overlap <= LEASE_MS + BOUND_MS && stretch <= LEASE_MS + BOUND_MS,
      `two hosts answered ARP for ${overlap} ms`,
    )
    assert.ok(
      k.maxOverlapMs <= LEASE_MS + BOUND_MS,
      `${k.worst.join(' and ')} answered together for ${k.maxOverlapMs} ms`,
    )
    assert.deepEqual(lateTcp, [], 'the dead MASTER accepted TCP on the VIP after its lease')

    // the backstop: valid_lft 3 s, the kernel removes the address of the dead process
    const s = await vl.vipState('n1')
    assert.equal(s.lease, false, 'no live lease on a dead MASTER')
    await waitFor("the dead MASTER's address to go by itself", 8_000, async () =>
      (await vl.vipState('n1')).address ? undefined : true,
    )
    // what systemd's ExecStopPost runs: the fence the dead process left goes
    assert.ok((await fenceTables(lab, 'n1')).length > 0, 'the killed node left its fence behind')
    const cleanup = await run(
      'ip',
      vl.lab.inside('n1', [process.execPath, CLI, 'vip', 'cleanup', '--config', join(sb.dir, 'n1.yaml')]),
      { timeout: 30_000 },
    )
    assert.match(cleanup.stdout, /VIP cleanup done/)
    assert.deepEqual(await fenceTables(lab, 'n1'), [])
    assert.deepEqual(await vl.vipState('n1'), { address: false, fence: false, lease: false, answers: false })

    vl.startNode('n1')
    await settleOn('n1')
    assert.equal((await fenceTables(lab, 'n1')).length, 2, 'one inet and one arp table')
  })

  it('SIGSTOP of the MASTER for 3 s: its kernel stops answering within the lease; after SIGCONT it does not answer without a new lease', async () => {
    await settleOn('n1')
    const arp = await watchArp(vl, 20_000)
    const kernels = watchKernels(vl)
    await waitFor(
      'n1 to answer ARP',
      10_000,
      async () => (arp.replies.some((r) => r.node === 'n1') ? true : undefined),
      20,
    )
    const n1 = vl.nodes.get('n1')!
    const stoppedAt = Date.now()
    n1.kill('SIGSTOP')
    let contAt = 0
    try {
      await waitFor('n2 to answer on the VIP', 20_000, () => vl.servedBy('n2', stoppedAt), 50)
      await sleep(Math.max(0, stoppedAt + 3_000 - Date.now()))
    } finally {
      contAt = Date.now()
      n1.kill('SIGCONT')
    }
    await sleep(1_500)
    const { replies } = await arp.stop()
    const k = await kernels.stop()
    const n1Last = last(replies, 'n1', contAt)
    const n2First = first(replies, 'n2', stoppedAt)
    const silentAfter = n1Last - stoppedAt
    const stretch = twoHostStretch(replies)
    const paused = (await vl.answers(stoppedAt + LEASE_MS + BOUND_MS)).filter(
      (a) => a.node === 'n1' && a.t < contAt,
    )
    process.stdout.write(
      `# SIGSTOP 3 s: n1 answered ARP until ${silentAfter} ms into the pause; n2 from ${n2First - stoppedAt} ms; ARP two-host stretch ${stretch} ms; kernel two-host ${k.maxOverlapMs} ms over ${k.samples} samples\n`,
    )
    assert.ok(
      silentAfter <= LEASE_MS + BOUND_MS,
      `the paused MASTER answered ARP ${silentAfter} ms into the pause`,
    )
    assert.ok(stretch <= LEASE_MS + BOUND_MS, `two hosts answered ARP for ${stretch} ms`)
    assert.ok(
      k.maxOverlapMs <= LEASE_MS + BOUND_MS,
      `${k.worst.join(' and ')} answered together for ${k.maxOverlapMs} ms`,
    )
    assert.deepEqual(paused, [], 'the paused MASTER accepted TCP on the VIP after its lease')
    // a resumed node with an expired lease never answers until it is MASTER again (preemption)
    const resumed = k.log.filter((s) => s.t >= contAt && s.answering.includes('n1'))
    const firstResumed = resumed[0]?.t ?? Infinity
    const n2AfterThat = k.log.filter((s) => s.t > firstResumed && s.answering.includes('n2'))
    assert.deepEqual(
      n2AfterThat.map((s) => s.answering),
      [],
      'n1 answered again while n2 still did',
    )
  })

  it('the MASTER cut off the bridge: its kernel stops answering within its lease, before another takes over', async () => {
    await settleOn('n1')
    const kernels = watchKernels(vl)
    await sleep(200)
    const cutAt = Date.now()
    await lab.detach('n1')
    try {
      await waitFor('n2 to answer the client', 20_000, () => vl.servedBy('n2', cutAt), 50)
      await sleep(2_000)
    } finally {
      await lab.attach('n1')
    }
    const k = await kernels.stop()
    const n1Answering = k.log.filter((s) => s.answering.includes('n1') && s.t <= Date.now())
    const n1Until = Math.max(cutAt, ...n1Answering.filter((s) => s.t < cutAt + 10_000).map((s) => s.t))
    const n2From = k.log.find((s) => s.t >= cutAt && s.answering.includes('n2'))?.t ?? Infinity
    process.stdout.write(
      `# partition: n1's kernel answered until ${n1Until - cutAt} ms after the cut, n2's from ${n2From - cutAt} ms; kernel two-host ${k.maxOverlapMs} ms over ${k.samples} samples\n`,
    )
    assert.ok(k.samples > 10, `only ${k.samples} samples`)
    assert.ok(n1Until - cutAt <= LEASE_MS + BOUND_MS + 100, `n1 answered ${n1Until - cutAt} ms after the cut`)
    assert.ok(
      k.maxOverlapMs <= LEASE_MS + BOUND_MS,
      `${k.worst.join(' and ')} answered together for ${k.maxOverlapMs} ms`,
    )
    await waitFor('every node to list all three alive after the heal', 30_000, async () => {
      for (const n of NODE_NAMES) {
        const st = await vl.status(n)
        if (st.members.filter((m) => m.state === 'alive').length !== 3) return undefined
      }
      return true
    })
  })

  it('the VIP interface of the MASTER vanishes: it notices, its `ip addr add` retries fail, it goes FAULT and hands over', async () => {
    await settleOn('n1')
    const n1 = vl.nodes.get('n1')!
    n1.kill('SIGTERM')
    assert.equal(await exited(n1, 15_000), 0)
    // n1's VIP on an interface of its own (a veth pair inside its namespace), so it can vanish
    // while the node stays on the mesh
    const ns = lab.host('n1').netns
    await ip('-n', ns, 'link', 'add', 'pgvip0', 'type', 'veth', 'peer', 'name', 'pgvip0p')
    await ip('-n', ns, 'link', 'set', 'pgvip0', 'up')
    await ip('-n', ns, 'link', 'set', 'pgvip0p', 'up')
    await vl.setInterface('n1', 'pgvip0')
    vl.startNode('n1')
    await waitFor('n1 to be MASTER with the VIP on pgvip0', 40_000, async () => {
      const s = await vl.status('n1')
      return s.election.state === 'MASTER' && s.election.vip.held ? true : undefined
    })
    const vanishedAt = Date.now()
    await ip('-n', ns, 'link', 'del', 'pgvip0')
    const st = await waitFor('n1 to go FAULT for its VIP', 30_000, async () => {
      const s = await vl.status('n1')
      return s.election.state === 'FAULT' && s.election.failingChecks.includes('pgmesh:vip') ? s : undefined
    })
    const faultAt = Date.now()
    assert.equal(st.election.vip.held, false)
    await waitFor('n2 to hold the VIP and answer the client', 20_000, async () =>
      (await vl.holders()).join() === 'n2' ? vl.servedBy('n2', vanishedAt) : undefined,
    )
    process.stdout.write(
      `# VIP interface gone: n1 FAULT after ${faultAt - vanishedAt} ms, n2 serving after ${Date.now() - vanishedAt} ms\n`,
    )
    assert.equal(await vl.masterStatus('n1'), 503)
    await waitForLogLine(sb, 'n1.log', /VIP_ADDRESS_LOST/)
    await waitForLogLine(sb, 'n1.log', /cannot acquire the VIP; retrying/)
    await waitForLogLine(sb, 'n1.log', /VIP_ACQUIRE_FAILED/)
  })
})

describe('IPv6 VIP in network namespaces: failover with unsolicited neighbour advertisements', {
  skip: skip ?? false,
  timeout: 180_000,
}, () => {
  const sb = new Sandbox()
  const lab = new NetnsLab()
  let vl: VipLab

  before(async () => {
    await sb.init('fence6')
    await lab.create([...NODE_NAMES, 'client'])
    // the client reaches the VIP's prefix on its link
    await ip('-n', lab.host('client').netns, 'addr', 'add', 'fd00::254/64', 'dev', 'eth0', 'nodad')
    vl = new VipLab(sb, lab, { vip: 'fd00::100/64' })
    await vl.init()
    for (const n of NODE_NAMES) vl.startService(n)
    for (const n of NODE_NAMES) vl.startNode(n)
    vl.startClient()
  })

  after(async () => {
    await sb.cleanup()
    await lab.destroy()
  })

  it('n1 serves the client on fd00::100; kill -9: its kernel stops answering within the lease and n2 serves', async () => {
    const t0 = Date.now()
    await waitFor('n1 to answer the client on the IPv6 VIP', 40_000, () => vl.servedBy('n1', t0), 100)
    assert.deepEqual(await vl.vipState('n1'), { address: true, fence: true, lease: true, answers: true })
    const kernels = watchKernels(vl)
    await sleep(200)
    const killedAt = Date.now()
    vl.nodes.get('n1')!.kill('SIGKILL')
    const servedAt = await waitFor(
      'n2 to answer on the IPv6 VIP',
      20_000,
      () => vl.servedBy('n2', killedAt),
      50,
    )
    await sleep(500)
    const k = await kernels.stop()
    const n1Until = Math.max(killedAt, ...k.log.filter((s) => s.answering.includes('n1')).map((s) => s.t))
    process.stdout.write(
      `# IPv6 kill -9: n2 served after ${servedAt - killedAt} ms; n1's kernel answered until ${n1Until - killedAt} ms; kernel two-host ${k.maxOverlapMs} ms\n`,
    )
    assert.ok(
      n1Until - killedAt <= LEASE_MS + BOUND_MS + 100,
      `n1 answered ${n1Until - killedAt} ms after the kill`,
    )
    assert.ok(k.maxOverlapMs <= LEASE_MS + BOUND_MS)
    assert.deepEqual(
      (await vl.answers(killedAt + LEASE_MS + BOUND_MS)).filter((a) => a.node === 'n1'),
      [],
      'the dead MASTER accepted TCP on the IPv6 VIP after its lease',
    )
  })
})

describe('a dual-stack pair of VIPs (198.18.0.100/24 + fd00::100/64) in network namespaces', {
  skip: skip ?? false,
  timeout: 180_000,
}, () => {
  const sb = new Sandbox()
  const lab = new NetnsLab()
  let vl: VipLab
  /** the same lab seen through its IPv6 VIP (kernel state only) */
  let vl6: VipLab

  /** who answers on [fd00::100]:5000 from the client's namespace, or null */
  const served6 = async (): Promise<string | null> => {
    const code = `const s=require('net').connect({host:'fd00::100',port:5000,timeout:500});let d='';s.setEncoding('utf8');s.on('data',(x)=>{d+=x});s.on('end',()=>{process.stdout.write(d.trim());process.exit(0)});s.on('timeout',()=>process.exit(1));s.on('error',()=>process.exit(1))`
    try {
      const { stdout } = await run('ip', lab.inside('client', [process.execPath, '-e', code]), {
        timeout: 5_000,
      })
      return stdout.trim() || null
    } catch {
      return null
    }
  }

  before(async () => {
    await sb.init('fence46')
    await lab.create([...NODE_NAMES, 'client'])
    await ip('-n', lab.host('client').netns, 'addr', 'add', 'fd00::254/64', 'dev', 'eth0', 'nodad')
    vl = new VipLab(sb, lab, { cluster: ['    secondAddress: fd00::100/64'] })
    vl6 = new VipLab(sb, lab, { vip: 'fd00::100/64' })
    await vl.init()
    for (const n of NODE_NAMES) vl.startService(n)
    for (const n of NODE_NAMES) vl.startNode(n)
    vl.startClient()
  })

  after(async () => {
    await sb.cleanup()
    await lab.destroy()
  })

  it('the MASTER serves both; kill -9: both go silent within the lease on the dead host and the next MASTER serves both', async () => {
    const t0 = Date.now()
    await waitFor('n1 to answer on the IPv4 VIP', 40_000, () => vl.servedBy('n1', t0), 100)
    await waitFor(
      'n1 to answer on the IPv6 VIP',
      10_000,
      async () => ((await served6()) === 'n1' ? true : undefined),
      100,
    )
    assert.deepEqual(await vl.vipState('n1'), { address: true, fence: true, lease: true, answers: true })
    assert.deepEqual(await vl6.vipState('n1'), { address: true, fence: true, lease: true, answers: true })
    const k4 = watchKernels(vl)
    const k6 = watchKernels(vl6)
    await sleep(200)
    const killedAt = Date.now()
    vl.nodes.get('n1')!.kill('SIGKILL')
    await waitFor('n2 to answer on the IPv4 VIP', 20_000, () => vl.servedBy('n2', killedAt), 50)
    await waitFor(
      'n2 to answer on the IPv6 VIP',
      10_000,
      async () => ((await served6()) === 'n2' ? true : undefined),
      50,
    )
    const servedAt = Date.now()
    const [w4, w6] = [await k4.stop(), await k6.stop()]
    const until = (w: typeof w4) =>
      Math.max(killedAt, ...w.log.filter((s) => s.answering.includes('n1')).map((s) => s.t)) - killedAt
    process.stdout.write(
      `# dual-stack kill -9: n2 serves both after ${servedAt - killedAt} ms; n1's kernel answered IPv4 until ${until(w4)} ms, IPv6 until ${until(w6)} ms; two-host ${w4.maxOverlapMs} / ${w6.maxOverlapMs} ms\n`,
    )
    for (const w of [w4, w6]) {
      assert.ok(until(w) <= LEASE_MS + BOUND_MS + 100, `n1 answered ${until(w)} ms after the kill`)
      assert.ok(w.maxOverlapMs <= LEASE_MS + BOUND_MS)
    }
    assert.equal((await vl6.vipState('n2')).answers, true)
  })
})
