import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { CommandAllowance, NodeAllowSchema, NotifyScriptsSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import { createNotifier } from './notifier.js'

const dir = mkdtempSync(join(tmpdir(), 'pgmesh-notifier-'))
after(() => rmSync(dir, { recursive: true, force: true }))

describe('notify scripts behind node.allow', () => {
  it('refuses a script whose program the node does not allow, logs COMMAND_NOT_ALLOWED and counts it', async () => {
    const refusedMarker = join(dir, 'master-ran')
    const allowedMarker = join(dir, 'backup-ran')
    const records: Record<string, unknown>[] = []
    const logger = pino({ level: 'debug' }, { write: (s: string) => void records.push(JSON.parse(s)) })
    const n = createNotifier({
      scripts: NotifyScriptsSchema.parse({
        master: ['/bin/sh', '-c', `touch '${refusedMarker}'`],
        backup: ['/usr/bin/touch', allowedMarker],
      }),
      vip: '',
      node: 'n1',
      logger,
      commands: new CommandAllowance({ allow: NodeAllowSchema.parse({ commands: ['/usr/bin/touch'] }) }),
    })
    try {
      n.notify('MASTER')
      n.notify('BACKUP')
      await n.idle()
      assert.equal(existsSync(refusedMarker), false, 'the refused script did not run')
      assert.equal(existsSync(allowedMarker), true, 'the allowed script ran')
      assert.deepEqual(n.counts(), { ok: 1, failed: 0, refused: 1 })
      const refusal = records.find((r) => r.code === 'COMMAND_NOT_ALLOWED')
      assert.equal(refusal?.state, 'MASTER')
      assert.match(String(refusal?.reason), /node\.allow\.commands/)
    } finally {
      await n.stop()
    }
  })

  it('without a gate every script runs (the driver decides nothing itself)', async () => {
    const marker = join(dir, 'ungated')
    const n = createNotifier({
      scripts: NotifyScriptsSchema.parse({ master: ['/bin/sh', '-c', `touch '${marker}'`] }),
      vip: '',
      node: 'n1',
      logger: pino({ level: 'silent' }),
    })
    n.notify('MASTER')
    await n.idle()
    await n.stop()
    assert.equal(existsSync(marker), true)
    assert.deepEqual(n.counts(), { ok: 1, failed: 0, refused: 0 })
  })
})
