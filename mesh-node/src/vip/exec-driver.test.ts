import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { type VipConfigInput, VipConfigSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import { createExecDriver } from './exec-driver.js'
import { createNoneDriver } from './none-driver.js'
import type { VipDriver } from './types.js'

const dir = mkdtempSync(join(tmpdir(), 'pgmesh-notify-'))
const drivers: VipDriver[] = []
after(async () => {
  await Promise.all(drivers.map((d) => d.stop()))
  rmSync(dir, { recursive: true, force: true })
})

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [])

function logCapture() {
  const records: Record<string, unknown>[] = []
  const logger = pino({ level: 'debug' }, { write: (s: string) => void records.push(JSON.parse(s)) })
  return { logger, records }
}

/** A script that logs its start and end (with the env it was given) to `out`, taking ~30 ms. */
function script(out: string, name: string): string[] {
  return [
    'sh',
    '-c',
    `echo "start ${name} $PGMESH_STATE|$PGMESH_VIP|$PGMESH_NODE|$PGMESH_TEST_PARENT" >> '${out}'; sleep 0.03; echo "end ${name}" >> '${out}'`,
  ]
}

function exec(config: VipConfigInput, logger = pino({ level: 'silent' })) {
  const d = createExecDriver({ config: VipConfigSchema.parse(config), node: 'n1', logger })
  drivers.push(d)
  return d
}

describe('exec VIP driver', () => {
  it('runs the notify script of each state in order, one at a time, with the state in the env', async () => {
    const out = join(dir, 'order.log')
    process.env.PGMESH_TEST_PARENT = 'inherited'
    try {
      const d = exec({
        driver: 'exec',
        address: '198.18.0.100/24',
        notify: {
          master: script(out, 'master'),
          backup: script(out, 'backup'),
          fault: script(out, 'fault'),
          stop: script(out, 'stop'),
        },
      })
      assert.equal(d.kind, 'exec')
      assert.equal(d.holds(), false)
      await d.start()
      await d.enter('MASTER')
      assert.equal(d.holds(), true)
      await d.enter('BACKUP')
      assert.equal(d.holds(), false)
      await d.enter('FAULT')
      await d.enter('MASTER')
      await d.enter('STOP')
      await until('five scripts', () => lines(out).length === 10)
    } finally {
      delete process.env.PGMESH_TEST_PARENT
    }
    assert.deepEqual(lines(out), [
      'start master MASTER|198.18.0.100/24|n1|inherited',
      'end master',
      'start backup BACKUP|198.18.0.100/24|n1|inherited',
      'end backup',
      'start fault FAULT|198.18.0.100/24|n1|inherited',
      'end fault',
      'start master MASTER|198.18.0.100/24|n1|inherited',
      'end master',
      'start stop STOP|198.18.0.100/24|n1|inherited',
      'end stop',
    ])
  })

  it('never waits for a hanging script, which is killed after notify.timeoutMs and logged', async () => {
    const pidFile = join(dir, 'hang.pid')
    const out = join(dir, 'after-hang.log')
    const { logger, records } = logCapture()
    const d = exec(
      {
        driver: 'exec',
        notify: {
          master: ['sh', '-c', `echo $$ > '${pidFile}'; exec sleep 30`],
          backup: script(out, 'backup'),
          timeoutMs: 200,
        },
      },
      logger,
    )
    const started = Date.now()
    await d.enter('MASTER')
    await d.enter('BACKUP')
    assert.ok(Date.now() - started < 100, 'enter() resolved at once')
    await until('the backup script, after the kill', () => lines(out).length === 2)
    assert.ok(Date.now() - started >= 190, 'scripts ran one after another')
    assert.throws(() => process.kill(Number(readFileSync(pidFile, 'utf8')), 0), { code: 'ESRCH' })
    const warn = records.find((r) => r.msg === 'notify script failed')
    assert.equal(warn?.level, 40)
    assert.equal(warn?.state, 'MASTER')
    assert.equal(warn?.signal, 'SIGKILL')
    assert.match(String(warn?.reason), /timed out after 200 ms/)
    assert.equal(d.holds(), false)
  })

  it('logs a failing script with its exit code and goes on', async () => {
    const out = join(dir, 'after-fail.log')
    const { logger, records } = logCapture()
    const d = exec(
      { driver: 'exec', notify: { master: ['sh', '-c', 'exit 7'], fault: script(out, 'fault') } },
      logger,
    )
    await d.enter('MASTER')
    await d.enter('BACKUP') // no backup script: nothing runs
    await d.enter('FAULT')
    await until('the fault script', () => lines(out).length === 2)
    assert.equal(lines(out)[0], 'start fault FAULT||n1|')
    const warn = records.find((r) => r.msg === 'notify script failed')
    assert.equal(warn?.exitCode, 7)
  })

  it('stop() runs the stop script once, waits for the queue at most timeoutMs and kills what still runs', async () => {
    const out = join(dir, 'stop.log')
    const pidFile = join(dir, 'stop-hang.pid')
    const d = exec({
      driver: 'exec',
      notify: {
        master: ['sh', '-c', `echo $$ > '${pidFile}'; exec sleep 30`],
        stop: script(out, 'stop'),
        timeoutMs: 300,
      },
    })
    await d.enter('MASTER')
    await until('the master script', () => existsSync(pidFile))
    const started = Date.now()
    await d.stop()
    await d.stop()
    const took = Date.now() - started
    assert.ok(took < 1500, `stop() took ${took} ms`)
    assert.equal(d.holds(), false)
    assert.throws(() => process.kill(Number(readFileSync(pidFile, 'utf8')), 0), { code: 'ESRCH' })
    await assert.rejects(d.enter('MASTER'), /stopped/)
    await d.enter('BACKUP')
  })

  it('a stop() after enter(STOP) does not run the stop script again', async () => {
    const out = join(dir, 'stop-once.log')
    const d = exec({ driver: 'exec', notify: { stop: script(out, 'stop') } })
    await d.enter('MASTER')
    await d.enter('STOP')
    await d.stop()
    assert.equal(lines(out).length, 2)
  })
})

describe('script VIP drivers: live reconfigure', () => {
  it('a MASTER whose address changed runs its master script again with the new PGMESH_VIP', async () => {
    const out = join(dir, 'reconf-master.log')
    const { logger, records } = logCapture()
    const d = exec(
      { driver: 'exec', address: '198.18.0.100/24', notify: { master: script(out, 'master') } },
      logger,
    )
    await d.enter('MASTER')
    await until('the first master script', () => lines(out).length === 2)
    await d.reconfigure(
      VipConfigSchema.parse({
        driver: 'exec',
        address: '198.18.0.101/24',
        notify: { master: script(out, 'm2') },
      }),
    )
    await until('the master script again', () => lines(out).length === 4)
    assert.deepEqual(lines(out).slice(2), ['start m2 MASTER|198.18.0.101/24|n1|', 'end m2'])
    assert.equal(d.holds(), true)
    const info = records.find((r) => r.msg === 'VIP settings changed')
    assert.equal(info?.from, '198.18.0.100/24')
    assert.equal(info?.vip, '198.18.0.101/24')
  })

  it('new scripts only: nothing runs now; a BACKUP with a new address runs nothing; the next state uses them', async () => {
    const out = join(dir, 'reconf-backup.log')
    const d = exec({ driver: 'exec', address: '198.18.0.100/24', notify: { master: script(out, 'old') } })
    await d.enter('MASTER')
    await until('the old master script', () => lines(out).length === 2)
    await d.reconfigure(
      VipConfigSchema.parse({
        driver: 'exec',
        address: '198.18.0.100/24',
        notify: { master: script(out, 'new'), backup: script(out, 'backup') },
      }),
    )
    await d.enter('BACKUP')
    await until('the new backup script', () => lines(out).length === 4)
    await d.reconfigure(
      VipConfigSchema.parse({
        driver: 'exec',
        address: '198.18.0.102/24',
        notify: { master: script(out, 'new'), backup: script(out, 'backup') },
      }),
    )
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(lines(out).length, 4, 'a BACKUP runs no script on an address change')
    await d.enter('MASTER')
    await until('the new master script', () => lines(out).length === 6)
    assert.deepEqual(lines(out), [
      'start old MASTER|198.18.0.100/24|n1|',
      'end old',
      'start backup BACKUP|198.18.0.100/24|n1|',
      'end backup',
      'start new MASTER|198.18.0.102/24|n1|',
      'end new',
    ])
  })

  it('a change of driver is left for the restart', async () => {
    const out = join(dir, 'reconf-kind.log')
    const { logger, records } = logCapture()
    const d = exec(
      { driver: 'exec', address: '198.18.0.100/24', notify: { master: script(out, 'm') } },
      logger,
    )
    await d.enter('MASTER')
    await d.reconfigure(VipConfigSchema.parse({ driver: 'none', address: '198.18.0.103/24' }))
    assert.equal(d.kind, 'exec')
    assert.match(String(records.find((r) => r.level === 40)?.msg), /next restart/)
    await until('the master script', () => lines(out).length === 2)
    await new Promise((r) => setTimeout(r, 100))
    assert.deepEqual(lines(out), ['start m MASTER|198.18.0.100/24|n1|', 'end m'])
  })
})

describe('none VIP driver', () => {
  it('records the holder and runs notify scripts if any', async () => {
    const out = join(dir, 'none.log')
    const d = createNoneDriver({
      config: VipConfigSchema.parse({ notify: { master: script(out, 'master') } }),
      node: 'n2',
      logger: pino({ level: 'silent' }),
    })
    drivers.push(d)
    assert.equal(d.kind, 'none')
    await d.start()
    assert.equal(d.holds(), false)
    await d.enter('MASTER')
    assert.equal(d.holds(), true)
    d.announce()
    await d.enter('FAULT')
    assert.equal(d.holds(), false)
    await d.stop()
    assert.equal(lines(out)[0], 'start master MASTER||n2|')
  })
})
