import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runMembershipSim } from './membership/membership-sim.js'

const SEEDS = Number(process.env.MEMBERSHIP_SIM_SEEDS ?? 5)

/**
 * The membership step at mesh sizes no process test reaches: convergence, false suspicions and
 * message rates, with loss and a partition. Default timings (heartbeat 500 ms, suspect 1.5 s,
 * dead 4 s). Figures go to the test log; the assertions are the protocol's promises.
 */
describe('membership simulation (pure step, 100–1,000 members)', { timeout: 120_000 }, () => {
  for (const members of [100, 1_000]) {
    // 1,000 joining within 2 s meet the cap on unconfirmed members (MAX_PENDING_MEMBERS): a few heartbeats more
    const bound = members >= 1_000 ? 2_000 : 1_050
    it(`${members} members, 2% loss: converge within ${bound} ms of the last join, no false death`, () => {
      for (let seed = 1; seed <= (members >= 1_000 ? Math.min(SEEDS, 2) : SEEDS); seed++) {
        const r = runMembershipSim({
          members,
          observers: members >= 1_000 ? 2 : 4,
          seed,
          durationMs: 8_000,
          joinSpreadMs: 2_000,
          loss: 0.02,
          delayMs: [1, 20],
        })
        process.stdout.write(
          `# members ${members} seed ${seed}: converged ${r.convergedMs} ms after the last join, ${r.messagesPerSecond} heartbeats/s per node, false suspicions ${r.falseSuspicions}, false deaths ${r.falseDeaths}\n`,
        )
        assert.ok(
          r.convergedMs !== null && r.convergedMs <= bound,
          `seed ${seed}: converged in ${r.convergedMs} ms`,
        )
        assert.equal(r.falseDeaths, 0, `seed ${seed}: a live member was declared dead`)
        // two heartbeats lost in a row (plus delay jitter) make a member suspect: p ≈ loss², rarely
        assert.ok(r.falseSuspicions <= 3, `seed ${seed}: ${r.falseSuspicions} suspicions`)
      }
    })
  }

  it('300 members, 30% loss: suspicions come and go, deaths stay rare', () => {
    const r = runMembershipSim({
      members: 300,
      observers: 3,
      seed: 7,
      durationMs: 20_000,
      joinSpreadMs: 1_000,
      loss: 0.3,
      delayMs: [1, 50],
    })
    process.stdout.write(
      `# 300 members, 30% loss: ${r.falseSuspicions} false suspicions, ${r.falseDeaths} false deaths over 20 s in ${r.steps} steps\n`,
    )
    // dead needs deadTimeoutMs (8 heartbeats) of silence: 0.3^7 ≈ 2e-4 per heartbeat and member
    assert.ok(r.falseDeaths <= 10, `${r.falseDeaths} false deaths`)
  })

  it('a partition of 200 members in two halves: each side sees the other go, and heals within a heartbeat', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = runMembershipSim({
        members: 200,
        observers: 4,
        seed,
        durationMs: 20_000,
        joinSpreadMs: 1_000,
        loss: 0.01,
        delayMs: [1, 20],
        partition: { fromMs: 4_000, toMs: 12_000 },
      })
      process.stdout.write(
        `# partition seed ${seed}: far side gone ${r.partitionSeen}, healed ${r.healedMs} ms after the heal\n`,
      )
      assert.ok(r.partitionSeen, `seed ${seed}: an observer still lists the far side alive`)
      assert.ok(r.healedMs !== null && r.healedMs <= 1_050, `seed ${seed}: healed in ${r.healedMs} ms`)
      assert.equal(r.falseDeaths, 0, `seed ${seed}: a reachable member was declared dead`)
    }
  })
})
