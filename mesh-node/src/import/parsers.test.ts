import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { parseHaproxy, splitHaproxyLine } from './haproxy-parser.js'
import { parseKeepalived } from './keepalived-parser.js'

const errorOf = (r: { ok: boolean; error?: { code: string; message: string } }) => {
  assert.equal(r.ok, false, 'expected an error')
  return r.error!
}

describe('haproxy.cfg parser', () => {
  it('splits words like HAProxy: quotes, escapes, comments', () => {
    const r = splitHaproxyLine(`  server "a b" 'c#d' e\\ f # comment "`, 1)
    assert.ok(r.ok)
    assert.deepEqual(r.value, ['server', 'a b', 'c#d', 'e f'])
  })

  it('groups directives under their section with line numbers', () => {
    const r = parseHaproxy('# top\nglobal\n  maxconn 10\n\ndefaults\n  mode tcp\nlisten pg\n  bind :5000\n')
    assert.ok(r.ok)
    assert.deepEqual(
      r.value.map((s) => [s.kind, s.name, s.line, s.directives.map((d) => d.line)]),
      [
        ['global', '', 2, [3]],
        ['defaults', '', 5, [6]],
        ['listen', 'pg', 7, [8]],
      ],
    )
  })

  it('a directive before any section is an error with its line', () => {
    const e = errorOf(parseHaproxy('\n\n  bind :5000\nlisten x\n'))
    assert.equal(e.code, 'IMPORT_PARSE')
    assert.match(e.message, /line 3: 'bind' appears before any section/)
  })

  it('an unterminated quote is an error with its line', () => {
    const e = errorOf(parseHaproxy('listen x\n  bind :5000\n  server a "10.0.0.1:5432\n'))
    assert.match(e.message, /haproxy\.cfg line 3: unterminated double quote/)
  })

  it('a proxy section without a name is an error with its line', () => {
    assert.match(errorOf(parseHaproxy('global\nlisten\n')).message, /line 2: 'listen' needs a name/)
    assert.match(errorOf(parseHaproxy('global foo\n')).message, /line 1: 'global' takes no arguments/)
  })

  it('never throws on random input: a value or an IMPORT_PARSE error', () => {
    const alphabet = fc.constantFrom(...'ab \t\n#"\'\\:{}*/.0123456789', 'listen', 'global', 'server', 'bind')
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 400 }),
          fc.array(alphabet, { maxLength: 200 }).map((a) => a.join('')),
        ),
        (text) => {
          const r = parseHaproxy(text)
          if (!r.ok) assert.equal(r.error.code, 'IMPORT_PARSE')
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('keepalived.conf parser', () => {
  it('builds the block tree; ! and # start comments; braces need no spaces', () => {
    const text = [
      '! comment',
      'global_defs {',
      '  router_id "lb 1" # trailing',
      '}',
      'vrrp_instance VI_1{',
      '  unicast_peer {',
      '    10.0.0.2',
      '  }',
      '  virtual_ipaddress { 10.0.0.100/24 dev eth0 }',
      '  nopreempt',
      '}',
    ].join('\n')
    const r = parseKeepalived(text)
    assert.ok(r.ok)
    const [g, vi] = r.value
    assert.equal(g!.keyword, 'global_defs')
    assert.deepEqual(
      g!.children!.map((c) => [c.keyword, c.args, c.line]),
      [['router_id', ['lb 1'], 3]],
    )
    assert.equal(vi!.keyword, 'vrrp_instance')
    assert.deepEqual(vi!.args, ['VI_1'])
    assert.deepEqual(
      vi!.children!.map((c) => [c.keyword, c.line, c.children?.map((x) => [x.keyword, ...x.args])]),
      [
        ['unicast_peer', 6, [['10.0.0.2']]],
        ['virtual_ipaddress', 9, [['10.0.0.100/24', 'dev', 'eth0']]],
        ['nopreempt', 10, undefined],
      ],
    )
  })

  it('a block opening on the next line belongs to the keyword above it', () => {
    const r = parseKeepalived('vrrp_script chk\n{\n  script "/bin/true"\n}\n')
    assert.ok(r.ok)
    assert.equal(r.value[0]!.children!.length, 1)
  })

  it('an unclosed block names the line that opened it', () => {
    const e = errorOf(parseKeepalived('global_defs {\n}\nvrrp_instance VI_1 {\n  priority 100\n'))
    assert.equal(e.code, 'IMPORT_PARSE')
    assert.match(e.message, /keepalived\.conf line 3: '\{' is never closed/)
  })

  it('a stray closing brace, a brace without keyword and an open quote name their line', () => {
    assert.match(errorOf(parseKeepalived('a\n}\n')).message, /line 2: '\}' without a matching '\{'/)
    assert.match(errorOf(parseKeepalived('x {\n  {\n  }\n}\n')).message, /line 2: '\{' must follow a keyword/)
    assert.match(
      errorOf(parseKeepalived('x {\n  script "/bin/true\n}\n')).message,
      /line 2: unterminated double quote/,
    )
  })

  it('bounds nesting depth', () => {
    const deep = `${'a {\n'.repeat(40)}${'}\n'.repeat(40)}`
    assert.match(errorOf(parseKeepalived(deep)).message, /nested deeper than 16/)
  })

  it('never throws on random input: a value or an IMPORT_PARSE error', () => {
    const alphabet = fc.constantFrom(...'ab \t\n#!"{}\\.0123456789', 'vrrp_instance', 'vrrp_script', '{', '}')
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 400 }),
          fc.array(alphabet, { maxLength: 300 }).map((a) => a.join('')),
        ),
        (text) => {
          const r = parseKeepalived(text)
          if (!r.ok) assert.equal(r.error.code, 'IMPORT_PARSE')
        },
      ),
      { numRuns: 500 },
    )
  })
})
