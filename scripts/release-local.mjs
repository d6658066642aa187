#!/usr/bin/env node
// `npm run release:local`: on this machine, what .github/workflows/release.yml does on the forge, with the same
// napi CLI commands, up to a publish that goes to a private Verdaccio on 127.0.0.1 instead of the public
// registry; then installs from it as users would and runs the smoke test on every platform this machine can
// run (natively, under qemu-aarch64, under wine). Prints a report and writes target/release-local/report.json.
//
//   npm run release:local [-- --targets=a,b] [--no-cuda] [--no-musl-tests]
//
// Toolchains come from the package registries and are installed once (scripts/release/tools.mjs). Builds are
// cargo's, so a second run rebuilds only what changed.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { debianTools, devBin, rustTargets, zigBin } from './release/tools.mjs'
import { GLIBC_FLOOR, TARGETS, compareVersions, glibcFloor, mingwRuntimeImports, napiBuild, windowsImports } from './release/targets.mjs'
import { startRegistry } from './release/registry.mjs'
import { npm, publishRelease } from './release/packages.mjs'
import { installAndSmoke } from './release/install-check.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const { platformOfTarget } = require('../platform.js')
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const args = process.argv.slice(2)
const flag = (name) => args.includes(`--${name}`)
const only = args.find((a) => a.startsWith('--targets='))?.slice('--targets='.length).split(',')
const out = path.join(root, 'target', 'release-local')
const artifactsDir = path.join(out, 'artifacts')
const logsDir = path.join(out, 'logs')
const log = (line) => process.stderr.write(`[release:local] ${line}\n`)
const seconds = (start) => Math.round((Date.now() - start) / 100) / 10

// Where each built binary is run here after the registry install.
const RUN_HERE = {
  'x86_64-unknown-linux-gnu': 'native',
  'aarch64-unknown-linux-gnu': 'linux-arm64-qemu',
  'x86_64-pc-windows-gnu': 'win32-x64-wine',
}

const report = { machine: machine(), started: new Date().toISOString(), builds: {}, glibc: {}, musl: {}, installs: {}, lint: {} }

function machine() {
  const info = fs.readFileSync('/proc/cpuinfo', 'utf8')
  const field = (name) => info.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm'))?.[1]
  const simd = /\bavx512f\b/.test(info) ? 'AVX-512' : /\bavx2\b/.test(info) ? 'AVX2' : /\basimd\b/.test(info) ? 'NEON' : 'no AVX2'
  return `${field('model name') ?? process.arch} (family ${field('cpu family')} model ${field('model')}), ${require('node:os').cpus().length} cores, ${simd}`
}

function run(cmd, cmdArgs, { env = {}, logFile, cwd = root } = {}) {
  const r = spawnSync(cmd, cmdArgs, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 28 })
  if (logFile) fs.writeFileSync(logFile, `$ ${cmd} ${cmdArgs.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}`)
  return r
}

const tail = (text, n = 6) => (text ?? '').trim().split('\n').slice(-n).join('\n')

/** What a failed build said: its compiler's and linker's error lines, not the stack of the script that ran it. */
function errors(r) {
  const lines = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')
  const found = lines.filter((l) => /(^|\s)error(\[|:)|fatal error/.test(l)).map((l) => l.slice(0, 400))
  return (found.length ? found.slice(0, 12) : lines.slice(-12)).join('\n')
}

function needed(file) {
  return [...execFileSync('readelf', ['-d', file], { encoding: 'utf8' }).matchAll(/\(NEEDED\)\s+Shared library: \[(.*)\]/g)].map((m) => m[1])
}

async function main() {
  fs.mkdirSync(logsDir, { recursive: true })
  const targets = only ?? pkg.napi.targets
  debianTools(log)
  rustTargets(targets.map((t) => t.split('.')[0]), log)
  const zig = zigBin(log)
  const env = { PATH: `${zig}${path.delimiter}${process.env.PATH}` }

  // 1. Build every target into target/release-local/artifacts (napi build --output-dir).
  fs.rmSync(artifactsDir, { recursive: true, force: true })
  fs.mkdirSync(artifactsDir, { recursive: true })
  const built = []
  for (const target of targets) {
    const how = TARGETS[target]
    const start = Date.now()
    if (how.elsewhere && process.platform !== 'darwin') {
      report.builds[target] = { ok: false, notHere: true, via: how.via, error: `not built here: ${how.elsewhere}` }
      log(`${target}: not built here: ${how.elsewhere}`)
      continue
    }
    log(`build ${target} (${how.via})`)
    const cmd = napiBuild(target, artifactsDir, log)
    const r = run(process.execPath, cmd.args, { env: cmd.env, logFile: path.join(logsDir, `build-${target}.log`) })
    const file = path.join(artifactsDir, `${pkg.napi.binaryName}.${platformOfTarget(target)}.node`)
    const ok = r.status === 0 && fs.existsSync(file)
    report.builds[target] = { ok, seconds: seconds(start), via: how.via, ...(ok ? { bytes: fs.statSync(file).size } : { error: errors(r) }) }
    log(`  ${ok ? 'built' : 'FAILED'} in ${report.builds[target].seconds} s${ok ? '' : `:\n${report.builds[target].error}`}`)
    if (ok) built.push(target)
  }

  // 2. The CUDA variant, linked against glibc 2.28 as well (its compiler comes from PyPI, see cuda-toolchain.mjs).
  let cudaBinary = null
  if (!flag('no-cuda') && (!only || only.includes('x86_64-unknown-linux-gnu'))) {
    const start = Date.now()
    cudaBinary = path.join(out, 'cuda', `${pkg.napi.binaryName}.linux-x64-gnu-cuda.node`)
    fs.mkdirSync(path.dirname(cudaBinary), { recursive: true })
    log(`build the CUDA variant (zig, glibc ${GLIBC_FLOOR})`)
    const r = run(process.execPath, ['scripts/build.mjs', '--features', 'cuda', `--zig-target=x86_64-unknown-linux-gnu.${GLIBC_FLOOR}`, `--out=${cudaBinary}`], { env, logFile: path.join(logsDir, 'build-cuda.log') })
    report.builds['x86_64-unknown-linux-gnu (CUDA)'] = { ok: r.status === 0, seconds: seconds(start), via: `zig, glibc ${GLIBC_FLOOR}`, ...(r.status === 0 ? { bytes: fs.statSync(cudaBinary).size } : { error: errors(r) }) }
    log(`  ${r.status === 0 ? 'built' : 'FAILED'} in ${seconds(start)} s`)
    if (r.status !== 0) cudaBinary = null
  }

  // 3. What each binary needs from the system: the glibc floor of gnu builds, no glibc at all for musl ones.
  for (const target of built.filter((t) => t.includes('-linux-'))) {
    const file = path.join(artifactsDir, `${pkg.napi.binaryName}.${platformOfTarget(target)}.node`)
    if (target.endsWith('-gnu')) report.glibc[target] = glibcFloor(file)
    else report.musl[target] = { glibcSymbols: glibcFloor(file), needs: needed(file) }
  }
  if (cudaBinary) report.glibc['x86_64-unknown-linux-gnu (CUDA)'] = glibcFloor(cudaBinary)
  for (const target of built.filter((t) => t.includes('-windows-'))) {
    const file = path.join(artifactsDir, `${pkg.napi.binaryName}.${platformOfTarget(target)}.node`)
    report.windows = { [target]: { imports: windowsImports(file), mingwRuntime: mingwRuntimeImports(file) } }
  }

  // 4. musl: the Rust tests of x86_64-unknown-linux-musl run here natively (static test binaries).
  if (!flag('no-musl-tests') && built.includes('x86_64-unknown-linux-musl')) {
    const start = Date.now()
    log('cargo zigbuild test --target x86_64-unknown-linux-musl (unit and parity tests, run natively)')
    const r = run(path.join(zig, 'cargo-zigbuild'), ['test', '--release', '--target', 'x86_64-unknown-linux-musl', '--lib', '--test', 'parity'], { env, logFile: path.join(logsDir, 'test-musl.log') })
    const results = [...(r.stdout ?? '').matchAll(/test result: (\w+)\. (\d+) passed; (\d+) failed/g)].map((m) => ({ ok: m[1], passed: +m[2], failed: +m[3] }))
    report.musl.tests = { ok: r.status === 0, seconds: seconds(start), passed: results.reduce((n, x) => n + x.passed, 0), failed: results.reduce((n, x) => n + x.failed, 0), ...(r.status === 0 ? {} : { error: tail(r.stdout + r.stderr, 12) }) }
    log(`  ${r.status === 0 ? 'passed' : 'FAILED'}: ${report.musl.tests.passed} passed, ${report.musl.tests.failed} failed, ${seconds(start)} s`)
  }

  // 5. Publish to a private registry, install from it into empty folders, and smoke-test.
  execFileSync(process.execPath, ['scripts/fetch-test-model.mjs'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] })
  const registry = await startRegistry({ log })
  try {
    const stageDir = path.join(out, 'stage')
    const published = publishRelease({ stageDir, artifactsDir, env: registry.env, targets: built, cudaBinary, log })
    report.published = { optionalDependencies: published.optionalDependencies, cuda: Boolean(cudaBinary) }

    // publint and attw on the main package as packed for the registry.
    const main = path.join(stageDir, 'package')
    const tgz = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', out], { cwd: main }))[0].filename
    const publint = run(process.execPath, [devBin('publint', 'publint'), 'run', '--strict', main], { logFile: path.join(logsDir, 'publint.log') })
    report.lint.publint = { ok: publint.status === 0, output: tail(publint.stdout + publint.stderr, 20) }
    const attw = run(process.execPath, [devBin('@arethetypeswrong/cli', 'attw'), path.join(out, tgz), '--format', 'ascii'], { logFile: path.join(logsDir, 'attw.log') })
    report.lint.attw = { ok: attw.status === 0, output: tail(attw.stdout + attw.stderr, 30) }
    log(`publint: ${report.lint.publint.ok ? 'clean' : 'PROBLEMS'}; attw: ${report.lint.attw.ok ? 'clean' : 'PROBLEMS'}`)

    const common = { registryEnv: registry.env, modelDir: path.join(root, 'fixtures/models/all-MiniLM-L6-v2'), referenceDir: path.join(root, 'fixtures/reference/minilm'), log }
    const checks = built.filter((t) => RUN_HERE[t]).map((t) => ({ name: RUN_HERE[t], platform: RUN_HERE[t], target: t }))
    if (cudaBinary) checks.push({ name: 'native + CUDA package', platform: 'native', target: 'x86_64-unknown-linux-gnu', extra: [`${pkg.name}-linux-x64-gnu-cuda`] })
    for (const check of checks) {
      const start = Date.now()
      try {
        const r = installAndSmoke({ ...common, platform: check.platform, extra: check.extra ?? [] })
        // The binary the loader took must be the one this check is about (the CUDA package when installed).
        const wanted = `${pkg.name}-${check.extra?.length ? 'linux-x64-gnu-cuda' : platformOfTarget(check.target)}/`
        report.installs[check.name] = {
          ok: r.smoke.ok && r.compilerCalls.length === 0 && r.smoke.binary?.length === 1 && r.smoke.binary[0].startsWith(wanted),
          installSeconds: Math.round(r.installSeconds * 10) / 10,
          compilerCalls: r.compilerCalls,
          packages: r.packages,
          binary: r.smoke.binary,
          minCosine: r.smoke.minCosine,
          device: r.smoke.device,
          node: `${r.smoke.node} ${r.smoke.platform}`,
          steps: r.smoke.steps,
          ...(r.smoke.error ? { error: r.smoke.error } : {}),
          seconds: seconds(start),
        }
      } catch (err) {
        report.installs[check.name] = { ok: false, error: String(err.message).slice(0, 4000), seconds: seconds(start) }
      }
      const i = report.installs[check.name]
      log(`${check.name}: ${i.ok ? 'ok' : 'FAILED'}${i.ok ? `, install ${i.installSeconds} s, min cosine ${i.minCosine}` : `: ${i.error}`}`)
    }
  } finally {
    await registry.stop()
  }

  report.finished = new Date().toISOString()
  fs.writeFileSync(path.join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`)
  printSummary()
  const failed = [
    ...Object.entries(report.builds).filter(([, b]) => !b.ok && !b.notHere).map(([t]) => `build ${t}`),
    ...Object.entries(report.glibc).filter(([, v]) => v === null || compareVersions(v, GLIBC_FLOOR) > 0).map(([t]) => `glibc floor of ${t}`),
    // musl's loader answers a "libc.so" dependency itself; glibc's is libc.so.6 with ld-linux.
    ...Object.entries(report.musl).filter(([t, v]) => t !== 'tests' && (v.glibcSymbols || v.needs.some((n) => n === 'libc.so.6' || n.startsWith('ld-linux')))).map(([t]) => `${t} needs glibc`),
    ...(report.musl.tests && !report.musl.tests.ok ? ['musl tests'] : []),
    ...Object.entries(report.windows ?? {}).filter(([, w]) => w.mingwRuntime.length).map(([t, w]) => `${t} imports ${w.mingwRuntime.join(', ')}`),
    ...Object.entries(report.installs).filter(([, i]) => !i.ok).map(([n]) => `install ${n}`),
    ...Object.entries(report.lint).filter(([, l]) => !l.ok).map(([n]) => n),
  ]
  if (failed.length) {
    log(`FAILED: ${failed.join('; ')}`)
    process.exitCode = 1
  }
}

function printSummary() {
  const lines = [`release:local on ${report.machine}`, '', '| target | built | via | seconds | glibc floor | run here |', '| --- | --- | --- | --- | --- | --- |']
  for (const [target, b] of Object.entries(report.builds)) {
    const plain = target.split(' ')[0]
    const runHere = target.includes('CUDA') ? report.installs['native + CUDA package'] : report.installs[RUN_HERE[plain]]
    const floor = report.glibc[target] ?? (report.musl[plain] ? `none (needs musl's ${report.musl[plain].needs.join(', ')})` : '')
    lines.push(`| ${target} | ${b.ok ? 'yes' : b.notHere ? 'not here' : 'FAILED'} | ${b.via} | ${b.seconds ?? ''} | ${floor} | ${runHere ? `${runHere.ok ? 'ok' : 'FAILED'} (${RUN_HERE[plain] ?? 'native'}${runHere.ok ? `, install ${runHere.installSeconds} s, min cosine ${runHere.minCosine.toFixed(12)}` : ''})` : ''} |`)
  }
  for (const [t, w] of Object.entries(report.windows ?? {})) lines.push('', `${t} imports ${w.imports.join(', ')} (MinGW runtime: ${w.mingwRuntime.join(', ') || 'none'})`)
  if (report.musl.tests) lines.push('', `musl Rust tests (x86_64, native): ${report.musl.tests.passed} passed, ${report.musl.tests.failed} failed in ${report.musl.tests.seconds} s`)
  lines.push('', `publint: ${report.lint.publint?.ok ? 'clean' : 'problems'}; attw: ${report.lint.attw?.ok ? 'clean' : 'problems'}`)
  for (const [target, b] of Object.entries(report.builds).filter(([, b]) => !b.ok)) lines.push('', `${target}: ${b.notHere ? '' : 'did not build: '}${b.error}`)
  process.stdout.write(`${lines.join('\n')}\n`)
}

await main()
