import { InProcessCluster } from './in-process-cluster.js'

const c = new InProcessCluster()
await c.add({ id: 'n1', priority: 110 })
await c.add({ id: 'n2', priority: 105, join: ['n1'] })
await c.add({ id: 'n3', priority: 100, join: ['n1'] })
const t0 = c.clock.mono()
for (const id of ['n1', 'n2', 'n3']) await c.start(id)
for (let i = 0; i < 300; i++) {
  await c.clock.advance(10)
  const v = c.get('n1').node.view.electionView().voters
  const alive = c
    .get('n1')
    .node.view.members()
    .filter((m) => m.state === 'alive').length
  if (i % 10 === 0 || v?.prev === null) console.log(c.clock.mono() - t0, alive, JSON.stringify(v))
  if (v?.prev === null && v.voters.length === 3) break
}
await c.stopAll()
