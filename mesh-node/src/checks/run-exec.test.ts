import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { CommandAllowance, NodeAllowSchema, type TrackedCheck, TrackedCheckSchema } from '@pgmesh/protocol'
import { runExecCheck } from './run-exec.js'

const dir = mkdtempSync(join(tmpdir(), 'pgmesh-exec-check-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const exec = (command: string[], timeoutMs = 1000) =>
  TrackedCheckSchema.parse({ name: 'x', kind: 'exec', command, timeoutMs, intervalMs: 1000 }) as Extract<
    TrackedCheck,
    { kind: 'exec' }
  >
const never = new AbortController().signal

describe('exec check', () => {
  it('passes on exit 0 and fails on anything else', async () => {
    assert.deepEqual(await runExecCheck(exec(['true']), never), { ok: true })
    const r = await runExecCheck(exec(['false']), never)
    assert.equal(r.ok, false)
    assert.match(r.error ?? '', /exited with code 1/)
    const missing = await runExecCheck(exec(['/nonexistent/check']), never)
    assert.equal(missing.ok, false)
    assert.match(missing.error ?? '', /could not start.*ENOENT/)
  })

  it('kills a command that outlives timeoutMs and counts it as a failure', async () => {
    const pidFile = join(dir, 'pid')
    const started = Date.now()
    const r = await runExecCheck(exec(['sh', '-c', `echo $$ > ${pidFile}; exec sleep 5`], 100), never)
    assert.ok(Date.now() - started < 1500, 'returned soon after the timeout')
    assert.equal(r.ok, false)
    assert.match(r.error ?? '', /timed out after 100 ms/)
    assert.throws(() => process.kill(Number(readFileSync(pidFile, 'utf8')), 0), { code: 'ESRCH' })
  })
})

describe('exec check behind node.allow', () => {
  it('never starts a program the node does not allow, and fails with COMMAND_NOT_ALLOWED', async () => {
    const marker = join(dir, 'ran-refused')
    const gate = new CommandAllowance({ allow: NodeAllowSchema.parse({ commands: ['/bin/true'] }) })
    const refused = await runExecCheck(exec(['/bin/sh', '-c', `touch ${marker}`]), never, gate)
    assert.equal(refused.ok, false)
    assert.match(
      refused.error ?? '',
      /^COMMAND_NOT_ALLOWED: program "\/bin\/sh" is not in node\.allow\.commands/,
    )
    assert.throws(() => readFileSync(marker), /ENOENT/, 'the refused program did not run')
    assert.deepEqual(await runExecCheck(exec(['/bin/true', 'any', 'args']), never, gate), { ok: true })
  })
})
