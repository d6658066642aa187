// Lays out the npm packages of a release the way the release workflow does on the forge, with the same napi
// CLI commands, in a staging folder (the checkout is never touched), and publishes them to a registry given by
// the environment (`startRegistry().env`). Used by `npm run release:local` and the registry-install test.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { devBin } from './tools.mjs'

const require = createRequire(import.meta.url)
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const { platformOfTarget } = require('../../platform.js')
const npmCli = process.env.npm_execpath && /npm-cli\.js$/.test(process.env.npm_execpath) ? process.env.npm_execpath : null

/** Runs npm with the given environment additions (npm_execpath when npm started us, else npm on PATH). */
export function npm(args, { cwd, env = {}, stdio = 'pipe' } = {}) {
  const [cmd, pre] = npmCli ? [process.execPath, [npmCli]] : ['npm', []]
  return execFileSync(cmd, [...pre, ...args], { cwd, env: { ...process.env, ...env }, stdio, encoding: 'utf8' })
}

function napi(args, { cwd, env = {} }) {
  return execFileSync(process.execPath, [devBin('@napi-rs/cli', 'napi'), ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', stdio: 'pipe' })
}

/**
 * Stages the main package (exactly what `npm pack` ships) and the npm/<platform> packages of `targets`, moves
 * the binaries from `artifactsDir` into them (`napi artifacts`), and publishes the platform packages and the
 * main package, whose optionalDependencies `napi pre-publish` writes. `targets` defaults to package.json's
 * napi.targets; a smaller list publishes a main package that names only those.
 * The CUDA variant, when `cudaBinary` is given, is published as embedding-service-linux-x64-gnu-cuda.
 */
export function publishRelease({ stageDir, artifactsDir, env, targets, cudaBinary, log = () => {} }) {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  targets ??= pkg.napi.targets
  fs.rmSync(stageDir, { recursive: true, force: true })
  fs.mkdirSync(stageDir, { recursive: true })
  const tarball = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', stageDir], { cwd: root }))[0].filename
  execFileSync('tar', ['xzf', path.join(stageDir, tarball), '-C', stageDir])
  fs.rmSync(path.join(stageDir, tarball))
  const main = path.join(stageDir, 'package')
  const staged = JSON.parse(fs.readFileSync(path.join(main, 'package.json'), 'utf8'))
  staged.napi.targets = targets
  fs.writeFileSync(path.join(main, 'package.json'), `${JSON.stringify(staged, null, 2)}\n`)
  for (const target of targets) {
    const name = platformOfTarget(target)
    fs.cpSync(path.join(root, 'npm', name), path.join(main, 'npm', name), { recursive: true })
  }
  const binaries = fs.readdirSync(artifactsDir).filter((f) => f.endsWith('.node'))
  log(`napi artifacts: ${binaries.join(', ')}`)
  napi(['artifacts', '--cwd', main, '--output-dir', path.resolve(artifactsDir), '--npm-dir', 'npm'], { cwd: main, env })
  for (const target of targets) {
    const name = platformOfTarget(target)
    const file = path.join(main, 'npm', name, `${pkg.napi.binaryName}.${name}.node`)
    if (!fs.existsSync(file)) throw new Error(`napi artifacts left npm/${name} without its binary (${path.basename(file)})`)
  }
  // No GitHub release here (the forge's publish job makes one): without it pre-publish needs no git either.
  log('napi pre-publish -t npm --no-gh-release (publishes the platform packages)')
  napi(['pre-publish', '-t', 'npm', '--no-gh-release', '--cwd', main, '--npm-dir', 'npm'], { cwd: main, env })
  if (cudaBinary) {
    const dir = cudaPackage(path.join(main, 'npm'), cudaBinary, pkg.version)
    log(`npm publish ${path.relative(stageDir, dir)}`)
    npm(['publish', dir], { cwd: main, env })
  }
  log('npm publish (the main package)')
  npm(['publish', '--ignore-scripts'], { cwd: main, env })
  return JSON.parse(fs.readFileSync(path.join(main, 'package.json'), 'utf8'))
}

/**
 * The CUDA build's own package, made from npm/linux-x64-gnu: installed only on request, and preferred by the
 * loader when present. Returns its folder. The release workflow calls this file's CLI for the same layout.
 */
export function cudaPackage(npmDir, binary, version) {
  const base = JSON.parse(fs.readFileSync(path.join(root, 'npm', 'linux-x64-gnu', 'package.json'), 'utf8'))
  const dir = path.join(npmDir, 'linux-x64-gnu-cuda')
  fs.mkdirSync(dir, { recursive: true })
  const main = `${base.name.replace(/-linux-x64-gnu$/, '')}.linux-x64-gnu-cuda.node`
  fs.copyFileSync(binary, path.join(dir, main))
  fs.copyFileSync(path.join(root, 'LICENSE'), path.join(dir, 'LICENSE'))
  const manifest = {
    ...base,
    name: `${base.name}-cuda`,
    version,
    description: 'The CUDA build of embedding-service for x86_64 Linux (glibc): installed on request, preferred when present',
    main,
    files: [main],
  }
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  fs.writeFileSync(path.join(dir, 'README.md'), `# ${manifest.name}\n\nThe CUDA build of \`embedding-service\` for x86_64 Linux (glibc >= 2.28). Install it beside \`embedding-service\` to run on an NVIDIA GPU; see that package's README.\n`)
  return dir
}

// node scripts/release/packages.mjs cuda-package <binary> <npm dir>: the release workflow's CUDA package.
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === 'cuda-package') {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  process.stdout.write(`${cudaPackage(path.resolve(process.argv[4]), path.resolve(process.argv[3]), pkg.version)}\n`)
}
