import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { ApiTokens, parseTokens } from './api-tokens.js'

describe('API tokens', () => {
  const dirs: string[] = []
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })

  it('reads one token per line, skipping blanks and comments', () => {
    const r = parseTokens('# ops team\n0123456789abcdef0123\n\n  fedcba9876543210fedc  \n')
    assert.ok(r.ok)
    assert.deepEqual(r.value, ['0123456789abcdef0123', 'fedcba9876543210fedc'])
  })

  it('refuses an empty file and short tokens, with TOKENS_INVALID', () => {
    const empty = parseTokens('# nothing\n')
    assert.ok(!empty.ok)
    assert.equal(empty.error.code, 'TOKENS_INVALID')
    const short = parseTokens('0123456789abcdef0123\nshort\n')
    assert.ok(!short.ok)
    assert.match(short.error.message, /token 2 is shorter than 16/)
  })

  it('a failed reload keeps the previous tokens', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgmesh-tokens-'))
    dirs.push(dir)
    const file = join(dir, 'tokens')
    await writeFile(file, '0123456789abcdef0123\n', { mode: 0o600 })
    const t = new ApiTokens(file, false)
    assert.ok((await t.reload()).ok)
    assert.deepEqual(t.tokens(), ['0123456789abcdef0123'])
    await writeFile(file, '')
    const r = await t.reload()
    assert.ok(!r.ok)
    assert.deepEqual(t.tokens(), ['0123456789abcdef0123'])
    assert.equal(new ApiTokens(undefined, true).tokens().length, 0)
  })

  it('refuses a token file open to group or others, at load and on reload (keeping the old tokens)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgmesh-tokens-'))
    dirs.push(dir)
    const file = join(dir, 'tokens')
    await writeFile(file, '0123456789abcdef0123\n', { mode: 0o644 })
    const first = await new ApiTokens(file, false).reload()
    assert.ok(!first.ok)
    assert.equal(first.error.code, 'FILE_MODE_UNSAFE')
    assert.match(first.error.message, /chmod 600 /)
    await chmod(file, 0o600)
    const t = new ApiTokens(file, false)
    assert.ok((await t.reload()).ok)
    await writeFile(file, 'fedcba9876543210fedc\n')
    await chmod(file, 0o640)
    const r = await t.reload()
    assert.ok(!r.ok)
    assert.equal(r.error.code, 'FILE_MODE_UNSAFE')
    assert.deepEqual(t.tokens(), ['0123456789abcdef0123'])
  })
})
