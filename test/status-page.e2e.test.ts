import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type Browser, chromium, type Page } from 'playwright-core'
import {
  describeCluster,
  everyoneSees,
  fetchStatus,
  startMeshNode,
  type TestNode,
  waitUntilServing,
} from './helpers/mesh-cluster.js'
import { Sandbox, waitFor } from './helpers/processes.js'

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** How long the page may take to show a new MASTER after the old one's process died. */
const FAILOVER_BOUND_MS = 20_000

/**
 * Membership and an election lease tolerant enough that a busy 2-core test machine (Chromium
 * starting next to three nodes) does not make members suspect or cost the MASTER its lease: this test is about the page.
 */
async function writeConfig(sb: Sandbox): Promise<string> {
  const file = join(sb.dir, 'status-page.yaml')
  const lines = [
    'cluster:',
    '  name: e2e',
    '  membership: { heartbeatIntervalMs: 200, suspectTimeoutMs: 1500, deadTimeoutMs: 3000 }',
    '  gossip: { meshHeartbeatMs: 200 }',
    '  election: { heartbeatIntervalMs: 100, leaseMs: 1500, electionTimeoutMinMs: 1600, electionTimeoutMaxMs: 2000 }',
    '',
  ]
  await writeFile(file, lines.join('\n'))
  return file
}

/** The node whose `GET /master` answers 200, once every node agrees on it. */
async function agreedMaster(nodes: readonly TestNode[]): Promise<TestNode | undefined> {
  const answers = await Promise.all(
    nodes.map((n) =>
      fetch(`${n.apiUrl}/master`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status),
    ),
  )
  const holders = nodes.filter((_, i) => answers[i] === 200)
  if (holders.length !== 1) return undefined
  const master = holders[0]!
  const views = await Promise.all(nodes.map(fetchStatus))
  return views.every((s) => s.election.master === master.id) ? master : undefined
}

async function masterOnPage(page: Page): Promise<string | null> {
  return await page.getByTestId('master').textContent({ timeout: 2000 })
}

async function memberAttr(page: Page, id: string, attr: string): Promise<string | null> {
  return await page
    .locator(`[data-testid="member"][data-member-id="${id}"]`)
    .getAttribute(attr, { timeout: 2000 })
}

async function hasNoHorizontalOverflow(page: Page): Promise<boolean> {
  const fits = await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')
  return fits === true
}

async function closeBrowser(browser: Browser | undefined): Promise<void> {
  if (browser === undefined) return
  await Promise.race([browser.close(), new Promise((done) => setTimeout(done, 10_000))])
}

describe('status page: a browser watches the MASTER change', { timeout: 180_000 }, () => {
  const sb = new Sandbox()
  const nodes: TestNode[] = []
  let browser: Browser | undefined
  const pageErrors: string[] = []

  before(async () => {
    await sb.init('status-page')
    const config = await writeConfig(sb)
    const n1 = await startMeshNode(sb, { id: 'n1', priority: 110, configFile: config })
    nodes.push(n1)
    for (const [id, priority] of [
      ['n2', 105],
      ['n3', 100],
    ] as const)
      nodes.push(await startMeshNode(sb, { id, priority, configFile: config, join: [n1.gossipPort] }))
    for (const n of nodes) await waitUntilServing(n)
    const alive = { n1: 'alive', n2: 'alive', n3: 'alive' } as const
    await waitFor('3 alive members on every node', 20_000, everyoneSees(nodes, alive)).catch(async (e) => {
      throw new Error(`${String(e)}\n${await describeCluster(sb, nodes)}`)
    })
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    })
  })

  after(async () => {
    await closeBrowser(browser)
    await sb.cleanup()
  })

  it('shows all members and the MASTER, and follows a failover without a reload', async (t) => {
    const first = await waitFor('one MASTER all nodes agree on', 30_000, () => agreedMaster(nodes))
    // the lowest-priority other node: the one least likely to become MASTER itself while watched
    const viewer = nodes.filter((n) => n !== first).at(-1)!
    const context = await browser!.newContext({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 2,
    })
    try {
      const page = await context.newPage()
      page.on('pageerror', (e) => pageErrors.push(e.message))
      page.setDefaultTimeout(10_000)
      await page.goto(`${viewer.apiUrl}/`, { waitUntil: 'load' })

      assert.equal(await page.getByTestId('member').count(), 3)
      await waitFor('the page to list all 3 members alive', 10_000, async () => {
        const states = await Promise.all(nodes.map((n) => memberAttr(page, n.id, 'data-state')))
        return states.every((st) => st === 'alive') ? true : undefined
      })
      assert.equal(
        await page.evaluate('window.innerWidth'),
        390,
        'the viewport meta did not give a phone layout',
      )
      assert.ok(await hasNoHorizontalOverflow(page), 'the page scrolls sideways on a 390 px wide phone')

      // the page refreshes itself: its generation time moves on without the test reloading it
      const firstGen = await page.locator('main').getAttribute('data-generated-at')
      await waitFor('the page to refresh itself', 10_000, async () =>
        (await page.locator('main').getAttribute('data-generated-at')) !== firstGen ? true : undefined,
      )

      // read the MASTER again right before the kill: a loaded machine may have moved it meanwhile
      const master = await waitFor(`a MASTER other than ${viewer.id}`, 30_000, async () => {
        const m = await agreedMaster(nodes)
        return m !== undefined && m !== viewer ? m : undefined
      })
      await waitFor(`the page to show ${master.id} as MASTER`, 10_000, async () =>
        (await masterOnPage(page)) === master.id &&
        (await memberAttr(page, master.id, 'data-master')) === 'true'
          ? true
          : undefined,
      )

      const killedAt = Date.now()
      master.proc.kill('SIGKILL')
      const next = await waitFor(
        `the page to show a MASTER other than ${master.id}`,
        FAILOVER_BOUND_MS,
        async () => {
          const shown = await masterOnPage(page)
          const node = nodes.find((n) => n.id === shown && n !== master)
          if (node === undefined) return undefined
          const res = await fetch(`${node.apiUrl}/master`, { signal: AbortSignal.timeout(2000) })
          return res.status === 200 ? node.id : undefined
        },
      )
      const tookMs = Date.now() - killedAt
      await waitFor(`the page to show ${master.id} as no longer alive`, FAILOVER_BOUND_MS, async () =>
        (await memberAttr(page, master.id, 'data-state')) !== 'alive' ? true : undefined,
      )
      assert.ok(await hasNoHorizontalOverflow(page), 'the refreshed page scrolls sideways on a phone')
      assert.deepEqual(pageErrors, [])
      t.diagnostic(`status page showed the new MASTER ${next} ${tookMs} ms after ${master.id} was killed`)
    } finally {
      await context.close()
    }
  })
})
