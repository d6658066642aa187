// The release machinery, checked without a forge: the workflow parses and covers every target in
// package.json's napi.targets, each npm/<platform> package is the one napi's loader expects, and the published
// main package holds exactly what a user needs.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import YAML from 'yaml'
import { root } from './helpers.mjs'

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const workflow = YAML.parse(fs.readFileSync(path.join(root, '.github/workflows/release.yml'), 'utf8'))
const platformOf = (target) => {
  const [arch, , os, abi] = target.split('-')
  const cpu = { x86_64: 'x64', aarch64: 'arm64' }[arch]
  if (os === 'linux') return { name: `linux-${cpu}-${abi}`, os: 'linux', cpu, libc: abi === 'gnu' ? 'glibc' : 'musl' }
  if (os === 'darwin') return { name: `darwin-${cpu}`, os: 'darwin', cpu }
  return { name: `win32-${cpu}-msvc`, os: 'win32', cpu }
}

describe('release workflow', () => {
  const targets = pkg.napi.targets
  const matrix = (job) => workflow.jobs[job].strategy.matrix.include.map((m) => m.target)

  it('builds every target, tests each where it runs, and publishes only on a version tag', () => {
    expect(targets.length).toBeGreaterThanOrEqual(7)
    expect(matrix('build').sort()).toEqual([...targets].sort())
    expect([...matrix('test'), ...matrix('test-musl')].sort()).toEqual([...targets].sort())
    expect(matrix('test-musl').every((t) => t.endsWith('musl'))).toBe(true)
    expect(workflow.jobs.publish.if).toBe("startsWith(github.ref, 'refs/tags/v')")
    expect(workflow.jobs.publish.needs).toEqual(expect.arrayContaining(['test', 'test-musl', 'build-cuda']))
    expect(workflow.on.push.tags).toEqual(['v*'])
  })

  it('never lets napi overwrite the hand-written loader and types, and builds Metal on Apple silicon', () => {
    const builds = workflow.jobs.build.strategy.matrix.include
    for (const b of builds) expect(b.build, b.target).toMatch(/--no-js --dts target\/napi-generated\.d\.ts/)
    expect(builds.find((b) => b.target === 'aarch64-apple-darwin').build).toMatch(/--features metal/)
    const cuda = workflow.jobs['build-cuda'].steps.map((s) => s.run ?? '').join('\n')
    // The CUDA variant is built through the project's own toolchain script (dynamic loading of the driver),
    // and its fallback to the CPU is tested on the runner, which has no GPU.
    expect(cuda).toMatch(/node scripts\/build\.mjs --features cuda --out=embedding-service\.linux-x64-gnu-cuda\.node/)
    expect(cuda).toMatch(/vitest run __test__\/cuda-fallback\.test\.mjs/)
  })
})

describe('npm/ platform packages', () => {
  for (const target of pkg.napi.targets) {
    const p = platformOf(target)
    it(`${p.name} is the package the loader looks for`, () => {
      const sub = JSON.parse(fs.readFileSync(path.join(root, 'npm', p.name, 'package.json'), 'utf8'))
      expect(sub.name).toBe(`${pkg.name}-${p.name}`)
      expect(sub.version).toBe(pkg.version)
      expect(sub.main).toBe(`${pkg.napi.binaryName}.${p.name}.node`)
      expect(sub.files).toEqual([sub.main])
      expect(sub.os).toEqual([p.os])
      expect(sub.cpu).toEqual([p.cpu])
      if (p.libc) expect(sub.libc).toEqual([p.libc])
    })
  }

  it('has no package for a target that is not built', () => {
    const dirs = fs.readdirSync(path.join(root, 'npm')).sort()
    expect(dirs).toEqual(pkg.napi.targets.map((t) => platformOf(t).name).sort())
  })
})

describe('npm pack', () => {
  it('lists exactly the files a user needs: loader, types, adapter, and the sources for a source build', () => {
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }))
    const files = packed.files.map((f) => f.path).sort()
    // Every file under src/: the Rust sources and the data they include (the stop-word list).
    const sources = fs
      .readdirSync(path.join(root, 'src'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.relative(root, path.join(e.parentPath ?? e.path, e.name)).split(path.sep).join('/'))
    const expected = [
      'Cargo.lock', 'Cargo.toml', 'README.md', 'build.rs', 'daemon.d.ts', 'daemon.js', 'daemon.mjs', 'index.d.ts', 'index.js',
      'index.mjs', 'package.json', 'platform.js', 'scripts/build.mjs', 'scripts/cuda-toolchain.mjs', 'scripts/install.mjs', 'scripts/python.mjs', 'service.js', ...sources,
    ].sort()
    expect(files).toEqual(expected)
  })
})
