import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { distribution, formatDistribution } from './failover-stats.js'
import { runSeed } from './run-seed.js'

const SEEDS = Number(process.env.SIM_SEEDS ?? 2000)
const FIRST_SEED = Number(process.env.SIM_FIRST_SEED ?? 1)

describe('MASTER election simulator', () => {
  it(`keeps every invariant over ${SEEDS} seeds`, () => {
    const crash: number[] = []
    const partition: number[] = []
    const stop: number[] = []
    const failures: string[] = []
    let steps = 0
    const started = performance.now()
    for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) {
      const r = runSeed(seed)
      steps += r.steps
      crash.push(...r.failovers.crash)
      partition.push(...r.failovers.partition)
      stop.push(...r.failovers.stop)
      if (r.violations.length > 0) {
        failures.push(
          `seed ${seed} (${r.summary}): ${r.violations[0]}\n` +
            `  replay: SIM_SEED=${seed} node --conditions=source --import tsx test/sim/replay.ts`,
        )
        if (failures.length >= 5) break
      }
    }
    const seconds = (performance.now() - started) / 1000
    console.log(`simulated ${SEEDS} seeds, ${steps} steps in ${seconds.toFixed(1)} s`)
    console.log('failover with default timings (simulated time until another node acquires the VIP):')
    console.log(`  ${formatDistribution('MASTER killed    ', distribution(crash))}`)
    console.log(`  ${formatDistribution('MASTER partitioned', distribution(partition))}`)
    console.log(`  ${formatDistribution('MASTER stopped    ', distribution(stop))}`)
    assert.deepEqual(failures, [], failures.join('\n'))
  })
})
