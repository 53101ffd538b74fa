import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { generateSecret, loadSecret, parseSecret } from './secret.js'

describe('cluster secret', () => {
  it('generates distinct secrets in the swarm-key format', () => {
    const a = generateSecret()
    assert.match(a, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    assert.notEqual(a, generateSecret())
    assert.ok(parseSecret(a).ok)
  })

  it('rejects malformed secrets with SECRET_INVALID', () => {
    for (const s of [
      '',
      'hunter2',
      '/key/swarm/psk/1.0.0/\n/base16/\nabc',
      `/key/swarm/psk/1.0.0/\n/base64/\n${'a'.repeat(64)}`,
    ]) {
      const r = parseSecret(s)
      assert.ok(!r.ok)
      assert.equal(r.error.code, 'SECRET_INVALID')
    }
  })

  it('loads a private file, refuses one open to group or others naming the chmod, reports a missing file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgmesh-secret-'))
    try {
      const f = join(dir, 's')
      await writeFile(f, generateSecret(), { mode: 0o600 })
      assert.ok((await loadSecret(f)).ok)
      for (const mode of [0o644, 0o640, 0o604, 0o620]) {
        await chmod(f, mode)
        const loose = await loadSecret(f)
        assert.ok(!loose.ok, mode.toString(8))
        assert.equal(loose.error.code, 'FILE_MODE_UNSAFE')
        assert.ok(loose.error.message.includes(`chmod 600 ${f}`), loose.error.message)
        assert.ok(loose.error.message.includes(`mode 0${mode.toString(8)}`), loose.error.message)
      }
      await chmod(f, 0o400)
      assert.ok((await loadSecret(f)).ok, 'read-only for the owner is fine')
      const missing = await loadSecret(join(dir, 'none'))
      assert.ok(!missing.ok)
      assert.equal(missing.error.code, 'SECRET_MISSING')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
