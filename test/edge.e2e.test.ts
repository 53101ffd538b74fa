import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  type ClusterStatus,
  ClusterStatusSchema,
  type ConfigView,
  ConfigViewSchema,
  type ControlPlaneConfigInput,
  EventsViewSchema,
} from '@pgmesh/protocol'
import { type Browser, chromium, type Page } from 'playwright-core'
import { buildEdge, type ControlPlaneProcess, startNodeControlPlane, startWorkerd } from './helpers/edge.js'
import {
  describeCluster,
  everyoneSees,
  fetchStatus,
  startMeshNode,
  type TestNode,
  waitUntilServing,
} from './helpers/mesh-cluster.js'
import { Sandbox, waitFor } from './helpers/processes.js'

const TOKEN = 'edge-e2e-token-0123456789abcdef'
/** Per node and call; the bounds below are this plus generous slack for a loaded 2-core machine. */
const NODE_TIMEOUT_MS = 1500
const SLACK_MS = 4000
const FAILOVER_BOUND_MS = 25_000

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
]

/** Tolerant timings, as in status-page.e2e: Chromium and workerd share the machine with three nodes. */
async function writeNodeConfig(sb: Sandbox): Promise<string> {
  const file = join(sb.dir, 'edge.yaml')
  await writeFile(join(sb.dir, 'tokens'), `# e2e\n${TOKEN}\n`, { mode: 0o600 })
  const lines = [
    'node:',
    `  api: { tokensFile: ${join(sb.dir, 'tokens')} }`,
    'cluster:',
    '  name: edge',
    '  membership: { heartbeatIntervalMs: 200, suspectTimeoutMs: 1500, deadTimeoutMs: 3000 }',
    '  gossip: { meshHeartbeatMs: 200 }',
    '  election: { heartbeatIntervalMs: 100, leaseMs: 1500, electionTimeoutMinMs: 1600, electionTimeoutMaxMs: 2000 }',
    '',
  ]
  await writeFile(file, lines.join('\n'))
  return file
}

async function cpStatus(cp: ControlPlaneProcess): Promise<{ status: ClusterStatus; tookMs: number }> {
  const started = performance.now()
  const res = await fetch(`${cp.url}/v1/status`, { signal: AbortSignal.timeout(NODE_TIMEOUT_MS + SLACK_MS) })
  assert.equal(res.status, 200, `${cp.runtime} /v1/status`)
  const status = ClusterStatusSchema.parse(await res.json())
  return { status, tookMs: performance.now() - started }
}

/** The MASTER every node reports, once they all agree. */
async function nodesAgreeOn(nodes: readonly TestNode[]): Promise<string | undefined> {
  const views = await Promise.all(nodes.map(fetchStatus))
  const m = views[0]?.election.master ?? null
  return m !== null && views.every((s) => s.election.master === m) ? m : undefined
}

function putConfig(cp: ControlPlaneProcess, body: unknown, token?: string): Promise<Response> {
  return fetch(`${cp.url}/v1/config`, {
    method: 'PUT',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(NODE_TIMEOUT_MS * 3 + SLACK_MS),
  })
}

async function masterOnPage(page: Page): Promise<string | null> {
  return await page.getByTestId('master').textContent({ timeout: 2000 })
}

describe('control plane on workerd (and Node) in front of three pgmesh nodes', { timeout: 300_000 }, () => {
  const sb = new Sandbox()
  const nodes: TestNode[] = []
  let workerd: ControlPlaneProcess
  let onNode: ControlPlaneProcess
  let browser: Browser | undefined
  let killed: TestNode | undefined

  before(async () => {
    await sb.init('edge')
    const edgeDir = await buildEdge(sb)
    const config = await writeNodeConfig(sb)
    const n1 = await startMeshNode(sb, { id: 'n1', priority: 110, configFile: config, logLevel: 'info' })
    nodes.push(n1)
    for (const [id, priority] of [
      ['n2', 105],
      ['n3', 100],
    ] as const) {
      nodes.push(
        await startMeshNode(sb, {
          id,
          priority,
          configFile: config,
          join: [n1.gossipPort],
          logLevel: 'info',
        }),
      )
    }
    for (const n of nodes) await waitUntilServing(n)
    await waitFor(
      '3 alive members on every node',
      30_000,
      everyoneSees(nodes, { n1: 'alive', n2: 'alive', n3: 'alive' }),
    ).catch(async (e) => {
      throw new Error(`${String(e)}\n${await describeCluster(sb, nodes)}`)
    })
    const cp: ControlPlaneConfigInput = {
      name: 'edge-cp',
      nodes: nodes.map((n) => ({ url: n.apiUrl })),
      nodeTimeoutMs: NODE_TIMEOUT_MS,
    }
    workerd = await startWorkerd(sb, edgeDir, cp)
    onNode = await startNodeControlPlane(sb, edgeDir, cp)
  })

  after(async () => {
    if (browser !== undefined)
      await Promise.race([browser.close(), new Promise((done) => setTimeout(done, 10_000))])
    await sb.cleanup()
  })

  it('aggregated status lists all members and the MASTER the nodes agree on, on both runtimes', async () => {
    const master = await waitFor('the nodes to agree on a MASTER', 30_000, () => nodesAgreeOn(nodes))
    for (const cp of [workerd, onNode]) {
      const s = await waitFor(`${cp.runtime} to report ${master} agreed by 3 of 3`, 15_000, async () => {
        const { status } = await cpStatus(cp)
        return status.election.master === master && status.aggregate?.reachable === 3 ? status : undefined
      })
      assert.equal(s.self, 'edge-cp')
      assert.deepEqual(s.members.map((m) => m.id).sort(), ['n1', 'n2', 'n3'])
      assert.deepEqual(s.aggregate?.nodes.map((n) => n.id).sort(), ['n1', 'n2', 'n3'])
      assert.equal(s.aggregate?.master.agreed, master)
      const members = (await (await fetch(`${cp.url}/v1/members`)).json()) as { members: unknown[] }
      assert.equal(members.members.length, 3)
      const backends = await fetch(`${cp.url}/v1/backends`)
      assert.equal(backends.status, 200)
      const metrics = await (await fetch(`${cp.url}/metrics`)).text()
      for (const n of nodes)
        assert.match(metrics, new RegExp(`pgmesh_node="${n.id}"`), `${cp.runtime} /metrics`)
    }
  })

  it('config apply through the control plane needs the nodes’ token and reaches every node', async () => {
    const current = ConfigViewSchema.parse(await (await fetch(`${workerd.url}/v1/config`)).json())
    const cluster = structuredClone(current.cluster) as ConfigView['cluster'] & {
      membership?: Record<string, unknown>
    }
    cluster.membership = { ...(cluster.membership ?? {}), leftRetentionMs: 300_000 }
    const body = { cluster, baseVersion: current.version }
    const none = await putConfig(workerd, body)
    assert.equal(none.status, 401, 'no token: refused by the control plane')
    const wrong = await putConfig(workerd, body, 'not-the-token-0123456789')
    assert.equal(wrong.status, 401, 'a wrong token: refused by the node it was forwarded to')
    assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, 'API_UNAUTHORIZED')
    const okRes = await putConfig(workerd, body, TOKEN)
    assert.equal(okRes.status, 200, await okRes.clone().text())
    const applied = (await okRes.json()) as { version: number }
    assert.equal(applied.version, current.version + 1)
    for (const n of nodes) {
      await waitFor(`${n.id} to run config version ${applied.version}`, 20_000, async () => {
        const v = ConfigViewSchema.parse(await (await fetch(`${n.apiUrl}/v1/config`)).json())
        return v.version === applied.version ? true : undefined
      })
    }
    const again = await putConfig(onNode, body, TOKEN)
    assert.equal(again.status, 409, 'a stale baseVersion through the Node control plane: CONFIG_CONFLICT')
  })

  it('the status page from workerd renders in Chromium and shows a MASTER kill with its timeline entry', async (t) => {
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    })
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      deviceScaleFactor: 1,
    })
    const errors: string[] = []
    try {
      const page = await context.newPage()
      page.on('pageerror', (e) => errors.push(e.message))
      page.setDefaultTimeout(10_000)
      await page.goto(`${workerd.url}/`, { waitUntil: 'load' })
      const master = await waitFor('the nodes to agree on a MASTER', 30_000, () => nodesAgreeOn(nodes))
      await waitFor(`the page to show ${master}`, 15_000, async () =>
        (await masterOnPage(page)) === master ? true : undefined,
      )
      assert.equal(await page.getByTestId('member').count(), 3)
      assert.equal(await page.locator('[data-testid="cp-node"][data-reachable="true"]').count(), 3)
      // the charts draw once the page has two points of its own history
      await waitFor('a chart drawn as SVG', 15_000, async () =>
        (await page.locator('[data-testid="chart"] svg').count()) > 0 ? true : undefined,
      )
      const fits = await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')
      assert.equal(fits, true, 'the page scrolls sideways on a 390 px wide phone')
      const before = await page.screenshot()
      await writeFile(join(sb.dir, 'before-kill.png'), before)
      // the MASTER card alone: the same pixels across a refresh while nothing changes, so a
      // difference after the kill is the change, not a clock on the page
      const masterCard = page.locator('#summary .card').first()
      const cardBefore = await masterCard.screenshot()
      const gen = await page.locator('main').getAttribute('data-generated-at')
      await waitFor('a refresh of the page', 10_000, async () =>
        (await page.locator('main').getAttribute('data-generated-at')) !== gen ? true : undefined,
      )
      const cardStill = await masterCard.screenshot()
      assert.equal(Buffer.compare(cardBefore, cardStill), 0, 'the MASTER card changed with nothing happening')

      const victim = nodes.find((n) => n.id === master)
      assert.ok(victim)
      killed = victim
      const killedAt = Date.now()
      victim.proc.kill('SIGKILL')
      const next = await waitFor(
        `a timeline entry for the MASTER moving off ${master}`,
        FAILOVER_BOUND_MS,
        async () => {
          const shown = await masterOnPage(page)
          if (shown === null || shown === master || shown === 'none') return undefined
          const entry = page.locator(`[data-testid="event"][data-kind="master"]`).filter({ hasText: shown })
          return (await entry.count()) > 0 ? shown : undefined
        },
      )
      const tookMs = Date.now() - killedAt
      await waitFor(`the page to mark ${master} unreachable`, 15_000, async () =>
        (await page
          .locator(`[data-testid="cp-node"][data-url="${victim.apiUrl}"]`)
          .getAttribute('data-reachable')) === 'false'
          ? true
          : undefined,
      )
      const after = await page.screenshot()
      await writeFile(join(sb.dir, 'after-kill.png'), after)
      assert.ok(before.length > 1000 && after.length > 1000, 'screenshots are images')
      assert.notEqual(Buffer.compare(before, after), 0, 'the page looks the same after the MASTER was killed')
      const cardAfter = await masterCard.screenshot()
      await writeFile(join(sb.dir, 'master-card-after.png'), cardAfter)
      assert.notEqual(
        Buffer.compare(cardBefore, cardAfter),
        0,
        'the MASTER card looks the same after the kill',
      )
      const ev = EventsViewSchema.parse(await (await fetch(`${workerd.url}/v1/events`)).json())
      const moved = ev.events.filter((e) => e.kind === 'master' && e.to === next)
      assert.ok(moved.length > 0, `no master event to ${next} in ${JSON.stringify(ev.events)}`)
      assert.deepEqual(errors, [])
      t.diagnostic(
        `the workerd status page showed ${next} as MASTER, with its timeline entry, ${tookMs} ms after ${master} was killed`,
      )
    } finally {
      await context.close()
    }
  })

  it('a killed node is marked unreachable within the per-node timeout, and the rest is still served', async () => {
    assert.ok(killed, 'the previous test killed the MASTER')
    const dead = killed
    const rest = nodes.filter((n) => n !== dead)
    for (const cp of [workerd, onNode]) {
      const { status, tookMs } = await cpStatus(cp)
      assert.ok(tookMs < NODE_TIMEOUT_MS + SLACK_MS, `${cp.runtime} took ${tookMs} ms`)
      const gone = status.aggregate?.nodes.find((n) => n.url === dead.apiUrl)
      assert.equal(gone?.reachable, false)
      assert.equal(gone?.error?.code, 'CP_NODE_UNREACHABLE')
      assert.equal(status.aggregate?.reachable, 2)
      assert.deepEqual(status.members.map((m) => m.id).sort(), ['n1', 'n2', 'n3'])
      const ready = await fetch(`${cp.url}/ready`)
      assert.equal(ready.status, 200, '2 of 3 nodes answer: a majority')
    }
    // a node that accepts and never answers (paused): marked unreachable by the timeout, not a hang
    const paused = rest[0]
    assert.ok(paused)
    const pausedUrl: string = paused.apiUrl
    paused.proc.kill('SIGSTOP')
    try {
      for (const cp of [workerd, onNode]) {
        const { status, tookMs } = await cpStatus(cp)
        assert.ok(
          tookMs >= NODE_TIMEOUT_MS * 0.9,
          `${cp.runtime} answered in ${tookMs} ms: did it wait for the paused node?`,
        )
        assert.ok(tookMs < NODE_TIMEOUT_MS + SLACK_MS, `${cp.runtime} took ${tookMs} ms`)
        const slow = status.aggregate?.nodes.find((n) => n.url === pausedUrl)
        assert.equal(slow?.error?.code, 'CP_NODE_TIMEOUT', cp.runtime)
        assert.equal(status.aggregate?.reachable, 1)
        assert.equal(status.election.master, null, 'one of three nodes is no majority')
        assert.equal((await fetch(`${cp.url}/ready`)).status, 503)
      }
    } finally {
      paused.proc.kill('SIGCONT')
    }
  })
})
