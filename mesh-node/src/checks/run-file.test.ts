import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { type TrackedCheck, TrackedCheckSchema } from '@pgmesh/protocol'
import { runFileCheck } from './run-file.js'

const dir = mkdtempSync(join(tmpdir(), 'pgmesh-file-check-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const file = (path: string, failWhen: 'exists' | 'missing') =>
  TrackedCheckSchema.parse({ name: 'f', kind: 'file', path, failWhen }) as Extract<
    TrackedCheck,
    { kind: 'file' }
  >
const never = new AbortController().signal

describe('file check', () => {
  it("failWhen 'exists' fails while the file exists", async () => {
    const flag = join(dir, 'maintenance')
    assert.deepEqual(await runFileCheck(file(flag, 'exists'), never), { ok: true })
    writeFileSync(flag, '')
    const r = await runFileCheck(file(flag, 'exists'), never)
    assert.equal(r.ok, false)
    assert.match(r.error ?? '', /exists/)
    rmSync(flag)
    assert.deepEqual(await runFileCheck(file(flag, 'exists'), never), { ok: true })
  })

  it("failWhen 'missing' fails while the file is absent", async () => {
    const ready = join(dir, 'ready')
    const r = await runFileCheck(file(ready, 'missing'), never)
    assert.equal(r.ok, false)
    assert.match(r.error ?? '', /is missing/)
    writeFileSync(ready, '')
    assert.deepEqual(await runFileCheck(file(ready, 'missing'), never), { ok: true })
    // a path through a regular file is absent, not an error
    assert.equal((await runFileCheck(file(join(ready, 'sub'), 'missing'), never)).ok, false)
    assert.equal((await runFileCheck(file(join(ready, 'sub'), 'exists'), never)).ok, true)
  })
})
