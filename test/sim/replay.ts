/**
 * Replays one simulator seed with a step-by-step trace:
 *   SIM_SEED=1234 node --conditions=source --import tsx test/sim/replay.ts
 */
import { runSeed } from './run-seed.js'

const raw = process.env.SIM_SEED
const seed = raw === undefined ? Number.NaN : Number(raw)
if (!Number.isInteger(seed)) {
  console.error('set SIM_SEED to the seed to replay, e.g. SIM_SEED=1234')
  process.exit(2)
}
const result = runSeed(seed, { trace: true })
for (const line of result.trace ?? []) console.log(line)
console.log(`\nseed ${seed}: ${result.summary}; ${result.steps} steps`)
if (result.violations.length === 0) console.log('no invariant violated')
else {
  console.log(`${result.violations.length} violation(s):`)
  for (const v of result.violations) console.log(`  ${v}`)
  process.exitCode = 1
}
