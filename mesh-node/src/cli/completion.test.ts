import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { describe, it } from 'node:test'
import { commandHelp, parseCommandLine, SUBCOMMANDS, USAGE } from './args.js'
import { completionScript } from './completion.js'

/** What bash's completion offers for `words` (the last one being completed), via the real bash. */
function complete(words: readonly string[]): string[] {
  const script = `${completionScript('bash')}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${words.length - 1}
_pgmesh
printf '%s\\n' "\${COMPREPLY[@]}"
`
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8', timeout: 10_000 })
  assert.equal(r.status, 0, r.stderr)
  return r.stdout.split('\n').filter((l) => l !== '')
}

describe('help, version and completion', () => {
  it('help COMMAND and COMMAND --help give that command in full; unknown topics are usage errors', () => {
    assert.deepEqual(parseCommandLine(['help', 'config']), {
      ok: true,
      command: { kind: 'help', topic: 'config' },
    })
    assert.deepEqual(parseCommandLine(['start', '--help']), {
      ok: true,
      command: { kind: 'help', topic: 'start' },
    })
    assert.deepEqual(parseCommandLine(['--version']), { ok: true, command: { kind: 'version' } })
    assert.equal(parseCommandLine(['help', 'frobnicate']).ok, false)
    assert.match(commandHelp('start') ?? '', /--secret-file FILE/)
    for (const c of SUBCOMMANDS) {
      assert.ok(USAGE.includes(`pgmesh ${c.name}`), `${c.name} missing from the overview`)
      assert.ok((commandHelp(c.name) ?? '').length > c.synopsis.length, `${c.name} has no help`)
    }
  })

  it('completion is a usage error without a known shell', () => {
    assert.equal(parseCommandLine(['completion']).ok, false)
    assert.equal(parseCommandLine(['completion', 'fish']).ok, false)
    assert.deepEqual(parseCommandLine(['completion', 'bash']), {
      ok: true,
      command: { kind: 'completion', shell: 'bash' },
    })
  })

  it('the bash script completes commands, actions and flags from the same table as the parser', () => {
    assert.deepEqual(complete(['pgmesh', 'co']).sort(), ['completion', 'config'])
    assert.deepEqual(complete(['pgmesh', 'config', 'ch']), ['check'])
    assert.deepEqual(complete(['pgmesh', 'maintenance', '']).sort(), ['off', 'on'])
    assert.deepEqual(complete(['pgmesh', 'start', '--secr']), ['--secret-file'])
    assert.deepEqual(complete(['pgmesh', 'start', '--log-level', 'de']), ['debug'])
    assert.ok(complete(['pgmesh', '--']).includes('--version'))
    // every flag the parser accepts is offered
    for (const c of SUBCOMMANDS) {
      const offered = complete(['pgmesh', c.name, '--'])
      for (const o of Object.keys(c.options)) assert.ok(offered.includes(`--${o}`), `${c.name} --${o}`)
    }
  })
})
