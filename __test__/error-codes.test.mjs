// Every error code the package throws is listed in `ErrorCode` (index.d.ts) and in the README's errors table,
// and nothing is listed that is never thrown (issue 37). The shipped sources are scanned: the JavaScript files
// the package publishes (package.json `files`) and the Rust crate (`src/`).
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { readJson, root } from './helpers.mjs'

const read = (file) => fs.readFileSync(path.join(root, file), 'utf8')

function shippedSources() {
  const files = []
  const walk = (rel) => {
    const full = path.join(root, rel)
    if (fs.statSync(full).isDirectory()) {
      for (const entry of fs.readdirSync(full)) walk(path.join(rel, entry))
    } else if (/\.(c?js|mjs|rs)$/.test(rel)) {
      files.push(rel)
    }
  }
  for (const entry of readJson(path.join(root, 'package.json')).files) walk(entry)
  return files
}

// A code in a string literal that is not being compared against (`err.code === 'ERR_…'` reads one, from
// Node or from a callee), with comments removed first.
function thrownCodes(source) {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
  const codes = new Set()
  for (const m of code.matchAll(/(===|!==)?\s*['"`](ERR_[A-Z0-9_]+)['"`]/g)) {
    if (!m[1]) codes.add(m[2])
  }
  return codes
}

function errorCodeType() {
  const dts = read('index.d.ts')
  const start = dts.indexOf('export type ErrorCode =')
  const body = dts.slice(start, dts.indexOf('\n\n', start))
  return new Set([...body.matchAll(/\|\s*'(ERR_[A-Z0-9_]+)'/g)].map((m) => m[1]))
}

function readmeTable() {
  const readme = read('README.md')
  const start = readme.indexOf('### Errors')
  const section = readme.slice(start, readme.indexOf('\n## ', start))
  const rows = section.split('\n').filter((line) => line.startsWith('| `ERR_'))
  return new Set(rows.flatMap((row) => [...row.split('|')[1].matchAll(/`(ERR_[A-Z0-9_]+)`/g)].map((m) => m[1])))
}

describe('error codes', () => {
  const sources = shippedSources()
  const thrown = new Map()
  for (const file of sources) {
    for (const c of thrownCodes(read(file))) thrown.set(c, [...(thrown.get(c) ?? []), file])
  }

  it('finds the codes in both languages (the scan itself works)', () => {
    expect(sources).toContain('src/error.rs')
    expect(sources).toContain('daemon/python-service.js')
    expect(thrown.get('ERR_INTERNAL')).toContain('src/error.rs')
    expect(thrown.get('ERR_PEER_DEPENDENCY_MISSING')).toContain('adapters/peer.js')
    expect(thrown.get('ERR_TIMEOUT')).toContain('daemon/python-service.js')
    expect(thrownCodes("if (err.code === 'ERR_X') throw coded('ERR_Y', 'ERR_Z is in a message') // 'ERR_W'")).toEqual(
      new Set(['ERR_Y']),
    )
  })

  it('lists every thrown code in ErrorCode, and no code that is never thrown', () => {
    const listed = errorCodeType()
    const unlisted = [...thrown].filter(([c]) => !listed.has(c)).map(([c, files]) => `${c} (${files.join(', ')})`)
    expect(unlisted, 'thrown but not in index.d.ts ErrorCode').toEqual([])
    expect([...listed].filter((c) => !thrown.has(c)), 'in ErrorCode but never thrown').toEqual([])
  })

  it("lists the same codes in the README's errors table as in ErrorCode", () => {
    expect([...readmeTable()].sort()).toEqual([...errorCodeType()].sort())
  })
})
