// The release machinery, checked without a forge: the workflow parses and covers every target in
// package.json's napi.targets, each npm/<platform> package is the one napi's loader expects, and the published
// main package holds exactly what a user needs.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import YAML from 'yaml'
import { createRequire } from 'node:module'
import { root } from './helpers.mjs'

const { platformName, platformOfTarget } = createRequire(import.meta.url)('../platform.js')

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const workflow = YAML.parse(fs.readFileSync(path.join(root, '.github/workflows/release.yml'), 'utf8'))
const platformOf = (target) => {
  const [arch, , os, abi] = target.split('-')
  const cpu = { x86_64: 'x64', aarch64: 'arm64' }[arch]
  if (os === 'linux') return { name: `linux-${cpu}-${abi}`, os: 'linux', cpu, libc: abi === 'gnu' ? 'glibc' : 'musl' }
  if (os === 'darwin') return { name: `darwin-${cpu}`, os: 'darwin', cpu }
  return { name: `win32-${cpu}-${abi}`, os: 'win32', cpu }
}
// GitHub-hosted runner images that exist (checked 2026-12; macos-13 was retired in 2025). A label outside this
// list fails the test, so a retired image is noticed here rather than by a release that never starts.
const RUNNERS = ['ubuntu-24.04', 'ubuntu-22.04', 'ubuntu-24.04-arm', 'ubuntu-22.04-arm', 'macos-14', 'macos-15', 'macos-15-intel', 'windows-2022', 'windows-2025']

describe('release workflow', () => {
  const targets = pkg.napi.targets
  const matrix = (job) => workflow.jobs[job].strategy.matrix.include
  const runs = (job) => workflow.jobs[job].steps.map((s) => s.run ?? '').join('\n')

  it('builds every target with the shared build table, and checks the glibc floor of gnu builds', () => {
    expect(targets.length).toBeGreaterThanOrEqual(7)
    expect(matrix('build').map((m) => m.target).sort()).toEqual([...targets].sort())
    expect(runs('build')).toContain('node scripts/release/targets.mjs build ${{ matrix.target }} .')
    const floor = workflow.jobs.build.steps.find((s) => s.name === 'glibc floor')
    expect(floor.run).toBe('node scripts/release/targets.mjs glibc-floor *.node 2.28')
    expect(floor.if).toContain("endsWith(matrix.target, '-gnu')")
    // The Windows build needs MinGW-w64 on its (Linux) runner.
    const win = matrix('build').find((m) => m.target.includes('windows'))
    expect(win.host).toMatch(/^ubuntu/)
    expect(runs('build')).toContain('gcc-mingw-w64-x86-64')
    const dlls = workflow.jobs.build.steps.find((s) => s.name === 'DLL imports')
    expect(dlls.run).toBe('node scripts/release/targets.mjs dll-imports *.node')
  })

  it('tests every target on a runner that can execute it, without the remote engine or the CUDA build', () => {
    const tested = [...matrix('test'), ...matrix('test-musl')]
    expect(tested.map((m) => m.target).sort()).toEqual([...targets].sort())
    expect(matrix('test-musl').every((m) => m.target.endsWith('musl'))).toBe(true)
    const arch = (t) => t.split('-')[0]
    for (const m of matrix('test')) {
      // An arm64 binary on an arm64 runner, an x64 one on an x64 runner.
      const armHost = /-arm$/.test(m.host) || (m.host.startsWith('macos') && !m.host.endsWith('-intel'))
      expect(armHost, `${m.target} on ${m.host}`).toBe(arch(m.target) === 'aarch64')
    }
    for (const job of ['test', 'test-musl']) {
      const vitest = runs(job).split('\n').find((l) => l.includes('vitest run'))
      expect(vitest).toContain('--exclude __test__/remote.test.mjs')
      expect(vitest).toContain('--exclude __test__/cuda-fallback.test.mjs')
      expect(runs(job)).not.toMatch(/remote-engine|--features cuda|npm test\b/)
    }
    // musl runs in Alpine by docker on the host (no JavaScript actions inside Alpine on arm64).
    expect(workflow.jobs['test-musl'].container).toBeUndefined()
    expect(runs('test-musl')).toMatch(/^docker run --rm .* node:20-alpine /m)
  })

  it('runs only on runner images that exist', () => {
    for (const [name, job] of Object.entries(workflow.jobs)) {
      const hosts = job.strategy ? job.strategy.matrix.include.map((m) => m.host) : [job['runs-on']]
      for (const host of hosts) expect(RUNNERS, `${name}: ${host}`).toContain(host)
    }
  })

  it('builds the CUDA variant on glibc 2.28 and keeps it out of napi artifacts', () => {
    const cuda = runs('build-cuda')
    expect(cuda).toContain('node scripts/build.mjs --features cuda --zig-target=x86_64-unknown-linux-gnu.2.28')
    expect(cuda).toContain('node scripts/release/targets.mjs glibc-floor cuda/embedding-service.linux-x64-gnu-cuda.node 2.28')
    expect(cuda).toMatch(/vitest run __test__\/cuda-fallback\.test\.mjs/)
    const upload = workflow.jobs['build-cuda'].steps.find((s) => s.uses?.startsWith('actions/upload-artifact'))
    expect(upload.with.name).not.toMatch(/^bindings-/)
    // The publish job gives napi artifacts only the bindings-* artifacts, and the CUDA one a folder of its own.
    const downloads = workflow.jobs.publish.steps.filter((s) => s.uses?.startsWith('actions/download-artifact'))
    expect(downloads.find((d) => d.with.path === 'artifacts').with.pattern).toBe('bindings-*')
    expect(downloads.find((d) => d.with.name === upload.with.name).with.path).not.toBe('artifacts')
    expect(runs('publish')).toContain('node scripts/release/packages.mjs cuda-package cuda/')
  })

  it('publishes only on a version tag, after every test job, with the same napi commands release:local runs', () => {
    expect(workflow.jobs.publish.if).toBe("startsWith(github.ref, 'refs/tags/v')")
    expect(workflow.jobs.publish.needs.sort()).toEqual(['build-cuda', 'test', 'test-musl'])
    expect(workflow.on.push.tags).toEqual(['v*'])
    const publish = runs('publish')
    expect(publish).toContain('test "v$(node -p "require(\'./package.json\').version")" = "$GITHUB_REF_NAME"')
    // id-token: write is there for npm's provenance, which every publish step asks for.
    expect(workflow.jobs.publish.permissions['id-token']).toBe('write')
    for (const step of workflow.jobs.publish.steps.filter((s) => /publish/.test(s.run ?? ''))) {
      expect(step.env?.NPM_CONFIG_PROVENANCE, step.run).toBe(true)
    }
    expect(publish).toContain('npx napi artifacts')
    expect(publish).toContain('npx napi pre-publish -t npm')
    // release:local runs the same two commands (scripts/release/packages.mjs).
    const rehearsal = fs.readFileSync(path.join(root, 'scripts/release/packages.mjs'), 'utf8')
    expect(rehearsal).toContain("napi(['artifacts'")
    expect(rehearsal).toContain("napi(['pre-publish', '-t', 'npm'")
  })

  it('has a build recipe for every target and no other, none of which lets napi overwrite the loader or types', async () => {
    const { TARGETS, napiArgs } = await import('../scripts/release/targets.mjs')
    expect(Object.keys(TARGETS).sort()).toEqual([...targets].sort())
    for (const target of targets) {
      for (const host of ['linux', 'darwin']) {
        if (target === 'aarch64-apple-darwin' && host === 'linux') {
          expect(() => napiArgs(target, 'out', host)).toThrow(/needs the macOS SDK/)
          continue
        }
        expect(napiArgs(target, 'out', host).join(' ')).toMatch(/ --no-js --dts target\/napi-generated\.d\.ts /)
      }
    }
    expect(napiArgs('aarch64-apple-darwin', 'out', 'darwin')).toContain('metal')
    for (const t of targets) expect(TARGETS[t].args.join(' ') + ' ').toMatch(new RegExp(`--target ${t}[. ]`))
    // Metal on Apple silicon, built where Xcode has its framework.
    expect(TARGETS['aarch64-apple-darwin'].macArgs).toEqual(['--features', 'metal'])
  })
})

describe.runIf(platformName().startsWith('linux-') && platformName().endsWith('-gnu'))('glibc floor (scripts/release/targets.mjs)', () => {
  const script = path.join(root, 'scripts/release/targets.mjs')
  const binary = path.join(root, `${pkg.napi.binaryName}.${platformName()}.node`)

  it('reads the newest GLIBC_ symbol version a binary needs, and fails a binary above the allowed floor', async () => {
    const { glibcFloor, compareVersions } = await import('../scripts/release/targets.mjs')
    if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: run \`npm install\` first`)
    const floor = glibcFloor(binary)
    expect(floor).toMatch(/^2\.\d+$/)
    expect(compareVersions('2.28', '2.9')).toBeGreaterThan(0)
    expect(execFileSync(process.execPath, [script, 'glibc-floor', binary, floor], { encoding: 'utf8' })).toContain(`needs glibc ${floor}`)
    const below = `2.${Number(floor.split('.')[1]) - 1}`
    expect(() => execFileSync(process.execPath, [script, 'glibc-floor', binary, below], { stdio: 'pipe' })).toThrow(/newer than the release's floor/)
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
      // npm's provenance ties a package to its repository: every platform package names the main one's.
      expect(sub.repository).toEqual(pkg.repository)
      expect(sub.license).toBe(pkg.license)
      expect(fs.readFileSync(path.join(root, 'npm', p.name, 'LICENSE'), 'utf8')).toBe(fs.readFileSync(path.join(root, 'LICENSE'), 'utf8'))
    })
  }

  it('are named by platform.js as napi names them', () => {
    for (const t of pkg.napi.targets) expect(platformOfTarget(t)).toBe(platformOf(t).name)
  })

  it('has no package for a target that is not built', () => {
    const dirs = fs.readdirSync(path.join(root, 'npm')).sort()
    expect(dirs).toEqual(pkg.napi.targets.map((t) => platformOf(t).name).sort())
  })
})

describe('npm pack', () => {
  it('lists exactly the files a user needs: loader, types, adapters, and the sources for a source build', () => {
    // npm is npm.cmd on Windows, which only a shell finds.
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', shell: process.platform === 'win32' }))
    const files = packed.files.map((f) => f.path).sort()
    // Every file under src/: the Rust sources and the data they include (the stop-word list).
    const sources = fs
      .readdirSync(path.join(root, 'src'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.relative(root, path.join(e.parentPath ?? e.path, e.name)).split(path.sep).join('/'))
    const expected = [
      'Cargo.lock', 'Cargo.toml', 'LICENSE', 'README.md', 'build.rs', 'daemon.d.mts', 'daemon.d.ts', 'daemon.js', 'daemon.mjs',
      'daemon/curated.js', 'daemon/errors.js', 'daemon/index.js', 'daemon/keep-alive.js', 'daemon/onnx-service.js', 'daemon/python-service.js', 'daemon/queries.js', 'daemon/similarity.js', 'index.d.mts', 'index.d.ts', 'index.js',
      'index.mjs', 'package.json', 'platform.js', 'langchain.js', 'langchain.mjs', 'langchain.d.ts', 'langchain.d.mts', 'ai-sdk.js',
      'ai-sdk.mjs', 'ai-sdk.d.ts', 'ai-sdk.d.mts', 'adapters/ai-sdk.js', 'adapters/langchain.js', 'adapters/peer.js', 'scripts/build.mjs', 'scripts/cuda-toolchain.mjs', 'scripts/install.mjs', 'scripts/python.mjs', 'service.js', ...sources,
    ].sort()
    expect(files).toEqual(expected)
  })
})
