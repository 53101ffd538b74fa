import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { type TrackedCheck, TrackedCheckSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import { createTrackedChecks, type TrackedChecks } from './tracked-checks.js'

const dir = mkdtempSync(join(tmpdir(), 'pgmesh-tracked-'))
const open: TrackedChecks[] = []
after(async () => {
  await Promise.all(open.map((c) => c.stop()))
  rmSync(dir, { recursive: true, force: true })
})

const silent = pino({ level: 'silent' })
const parse = (c: unknown) => TrackedCheckSchema.parse(c) as TrackedCheck

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

function make(checks: TrackedCheck[], logger = silent) {
  const changes: [string, boolean][] = []
  const tc = createTrackedChecks({ checks, logger, onChange: (n, p) => changes.push([n, p]) })
  open.push(tc)
  return { tc, changes }
}

/** An exec check that logs P or F per run to `log` and fails while `flag` exists. */
function flagged(name: string, extra: Record<string, unknown> = {}) {
  const log = join(dir, `${name}.log`)
  const flag = join(dir, `${name}.flag`)
  const script = `if [ -e '${flag}' ]; then echo F >> '${log}'; exit 1; else echo P >> '${log}'; fi`
  const check = parse({ name, kind: 'exec', command: ['sh', '-c', script], ...extra })
  const runs = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [])
  return { check, log, flag, runs }
}

/** Keepalived's rule applied to a sequence of results: the run numbers (1-based) after which the state flips. */
function expectedChanges(results: string[], rise: number, fall: number): [number, boolean][] {
  const out: [number, boolean][] = []
  let passing = false
  let streak = 0
  results.forEach((r, i) => {
    const ok = r === 'P'
    if (i === 0) {
      passing = ok
      streak = 1
      if (ok) out.push([i + 1, true])
      return
    }
    const prevOk = results[i - 1] === 'P'
    streak = ok === prevOk ? streak + 1 : 1
    if (ok && !passing && streak >= rise) {
      passing = true
      out.push([i + 1, true])
    } else if (!ok && passing && streak >= fall) {
      passing = false
      out.push([i + 1, false])
    }
  })
  return out
}

describe('tracked checks', () => {
  it('count as failing until their first result, which sets the state directly', async () => {
    const good = parse({ name: 'good', kind: 'exec', command: ['true'], rise: 5 })
    const bad = parse({ name: 'bad', kind: 'exec', command: ['false'], fall: 5, weight: -20 })
    const { tc, changes } = make([good, bad])
    assert.deepEqual([...tc.failing()].sort(), ['bad', 'good'])
    assert.deepEqual(
      tc.views().map((v) => [v.name, v.passing, v.ran, v.lastRunAt]),
      [
        ['good', false, false, null],
        ['bad', false, false, null],
      ],
    )
    const before = Date.now()
    tc.start()
    tc.start()
    await until('both results', () => tc.views().every((v) => v.ran))
    assert.deepEqual(changes, [['good', true]], 'a first failure is no change')
    assert.deepEqual([...tc.failing()], ['bad'])
    const [g, b] = tc.views()
    assert.equal(g?.passing, true)
    assert.equal(g?.lastError, null)
    assert.equal(b?.kind, 'exec')
    assert.equal(b?.weight, -20)
    assert.equal(b?.passing, false)
    assert.match(b?.lastError ?? '', /exited with code 1/)
    assert.ok((b?.lastRunAt ?? 0) >= before)
    await tc.stop()
  })

  it('turns failing after `fall` consecutive failures and passing after `rise` passes', async () => {
    const { check, flag, runs } = flagged('riser', { intervalMs: 60, timeoutMs: 60, rise: 3, fall: 2 })
    // the run count at each change: the run's line is in the log before its result is recorded
    const at: [number, boolean][] = []
    const tc = createTrackedChecks({
      checks: [check],
      logger: silent,
      onChange: (_n, p) => at.push([runs().length, p]),
    })
    open.push(tc)
    tc.start()
    await until('first pass', () => at.length === 1)
    await until('a few passes', () => runs().length >= 3)
    writeFileSync(flag, '')
    await until('failing', () => at.length === 2)
    rmSync(flag)
    await until('passing again', () => at.length === 3)
    await tc.stop()
    assert.deepEqual(
      at.map(([, p]) => p),
      [true, false, true],
    )
    assert.deepEqual(at, expectedChanges(runs(), 3, 2))
    const after = runs().length
    await new Promise((r) => setTimeout(r, 80))
    assert.equal(runs().length, after, 'no run after stop()')
  })

  it('runs every intervalMs, never overlapping', async () => {
    const log = join(dir, 'overlap.log')
    // each run takes a good part of its interval; an overlap would show as two B lines in a row
    const script = `echo B >> '${log}'; sleep 0.03; echo E >> '${log}'`
    const slow = parse({
      name: 'slow',
      kind: 'exec',
      command: ['sh', '-c', script],
      intervalMs: 100,
      timeoutMs: 100,
    })
    const { tc } = make([slow])
    tc.start()
    await new Promise((r) => setTimeout(r, 700))
    await tc.stop()
    const lines = readFileSync(log, 'utf8').trim().split('\n')
    const runs = lines.filter((l) => l === 'B').length
    assert.ok(runs >= 3 && runs <= 8, `${runs} runs in 700 ms`)
    for (let i = 1; i < lines.length; i++) assert.notEqual(lines[i], lines[i - 1], 'runs overlapped')
  })

  it('counts a run past timeoutMs as a failure and kills it; stop() leaves no child behind', async () => {
    const pidFile = join(dir, 'hang.pid')
    const hang = parse({
      name: 'hang',
      kind: 'exec',
      command: ['sh', '-c', `echo $$ > '${pidFile}'; exec sleep 5`],
      intervalMs: 150,
      timeoutMs: 100,
    })
    const { tc, changes } = make([hang])
    tc.start()
    await until('the timeout', () => tc.views()[0]?.ran === true)
    assert.match(tc.views()[0]?.lastError ?? '', /timed out after 100 ms/)
    assert.deepEqual(changes, [])
    // the next run is under way (started 150 ms after the first): stop() must kill it
    await until('a second run', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8') !== '')
    rmSync(pidFile)
    await until('the second run', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'))
    const pid = Number(readFileSync(pidFile, 'utf8'))
    const started = Date.now()
    await tc.stop()
    await tc.stop()
    assert.ok(Date.now() - started < 1000, 'stop() does not wait for the timeout')
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' })
  })

  it('runs http, tcp and file checks and logs each change under component checks', async () => {
    const server = createServer((s) => s.destroy())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as AddressInfo).port
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const closedPort = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const lines: Record<string, unknown>[] = []
    const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) })
    try {
      const { tc, changes } = make(
        [
          parse({ name: 'pg-port', kind: 'tcp', host: '127.0.0.1', port }),
          parse({ name: 'closed', kind: 'tcp', host: '127.0.0.1', port: closedPort, weight: -10 }),
          parse({ name: 'api', kind: 'http', url: `http://127.0.0.1:${closedPort}/`, weight: 5 }),
          parse({ name: 'maint', kind: 'file', path: join(dir, 'no-such-flag') }),
        ],
        logger,
      )
      tc.start()
      await until('all results', () => tc.views().every((v) => v.ran))
      await tc.stop()
      assert.deepEqual(changes.sort(), [
        ['maint', true],
        ['pg-port', true],
      ])
      assert.deepEqual([...tc.failing()].sort(), ['api', 'closed'])
      const info = lines.filter((l) => l.level === 30)
      assert.ok(info.every((l) => l.component === 'checks'))
      assert.ok(info.some((l) => l.check === 'pg-port' && l.passing === true && l.msg === 'check passing'))
      assert.ok(
        lines.some((l) => l.level === 20 && l.check === 'closed' && /ECONNREFUSED/.test(String(l.reason))),
      )
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('survives a throwing listener and rejects duplicate names', async () => {
    const tc = createTrackedChecks({
      checks: [
        parse({ name: 'ok', kind: 'exec', command: ['true'], intervalMs: 20, timeoutMs: 20, fall: 1 }),
      ],
      logger: silent,
      onChange: () => {
        throw new Error('listener bug')
      },
    })
    open.push(tc)
    tc.start()
    await until('a few runs', () => tc.views()[0]?.passing === true)
    const first = tc.views()[0]?.lastRunAt ?? 0
    await until('another run', () => (tc.views()[0]?.lastRunAt ?? 0) > first)
    await tc.stop()
    const dup = parse({ name: 'x', kind: 'exec', command: ['true'] })
    assert.throws(
      () => createTrackedChecks({ checks: [dup, dup], logger: silent, onChange: () => {} }),
      /duplicate/,
    )
  })
})

describe('tracked checks: live update (a cluster config edit)', () => {
  it('keeps unchanged checks, counts a new one only from its first result, stops removed ones', async () => {
    const kept = flagged('upd-kept', { intervalMs: 150, timeoutMs: 150 })
    const gone = flagged('upd-gone', { intervalMs: 150, timeoutMs: 150 })
    const { tc, changes } = make([kept.check, gone.check])
    tc.start()
    await until('both pass', () => tc.failing().size === 0 && tc.views().every((v) => v.ran))
    const added = flagged('upd-new', { intervalMs: 150, timeoutMs: 150, weight: 0 })
    writeFileSync(added.flag, '')
    const r = tc.update([kept.check, added.check])
    assert.deepEqual(r, { added: ['upd-new'], changed: [], removed: ['upd-gone'] })
    assert.deepEqual(
      tc.weighted().map((c) => c.name),
      ['upd-kept'],
      'the new check has no result yet: not counted',
    )
    assert.equal(tc.failing().size, 0)
    assert.equal(tc.views().find((v) => v.name === 'upd-kept')?.passing, true, 'kept its state')
    await until('the new check reports', () => changes.some(([n]) => n === 'upd-new'))
    assert.deepEqual(changes.at(-1), ['upd-new', false], 'its first result is reported, failing or not')
    assert.deepEqual(
      tc
        .weighted()
        .map((c) => c.name)
        .sort(),
      ['upd-kept', 'upd-new'],
    )
    assert.deepEqual([...tc.failing()], ['upd-new'])
    const goneRuns = gone.runs().length
    await new Promise((r) => setTimeout(r, 500))
    assert.equal(gone.runs().length, goneRuns, 'a removed check no longer runs')
  })

  it('a changed check keeps its state and runs the new definition', async () => {
    const a = flagged('upd-a', { intervalMs: 150, timeoutMs: 150 })
    const b = flagged('upd-b', { intervalMs: 150, timeoutMs: 150 })
    const { tc } = make([a.check])
    tc.start()
    await until('a passes', () => tc.views()[0]?.passing === true)
    const changed = { ...b.check, name: 'upd-a', weight: -5 }
    assert.deepEqual(tc.update([changed]).changed, ['upd-a'])
    assert.equal(tc.views()[0]?.passing, true, 'no flap while the new definition has not run')
    assert.equal(tc.weighted()[0]?.weight, -5)
    await until('the new command runs', () => b.runs().length > 0)
  })
})
