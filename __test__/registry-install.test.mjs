// What a user gets from `npm install embedding-service`: the packages are laid out and published as the
// release does it (napi artifacts, napi pre-publish, npm publish) to a private Verdaccio on 127.0.0.1, then
// installed into an empty folder whose PATH has node, npm and sh only, with stand-ins for cargo, rustc,
// python and the C compilers that record any call. The binary is this checkout's own build for this platform.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { minilmDir, reference, root } from './helpers.mjs'
import { startRegistry } from '../scripts/release/registry.mjs'
import { publishRelease } from '../scripts/release/packages.mjs'
import { installAndSmoke } from '../scripts/release/install-check.mjs'

const { platformName } = createRequire(import.meta.url)('../platform.js')
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const name = platformName()
const target = pkg.napi.targets.find((t) => createRequire(import.meta.url)('../platform.js').platformOfTarget(t) === name)

describe.runIf(target)(`npm install from a registry on ${name}`, () => {
  let registry
  let work
  let published
  beforeAll(async () => {
    const binary = path.join(root, `${pkg.napi.binaryName}.${name}.node`)
    if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: run \`npm install\` (or \`npm run build\`) first`)
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'embedding-service-registry-test-'))
    const artifacts = path.join(work, 'artifacts')
    fs.mkdirSync(artifacts)
    fs.copyFileSync(binary, path.join(artifacts, path.basename(binary)))
    registry = await startRegistry()
    published = publishRelease({ stageDir: path.join(work, 'stage'), artifactsDir: artifacts, env: registry.env, targets: [target] })
  }, 180_000)
  afterAll(async () => {
    await registry?.stop()
    if (work) fs.rmSync(work, { recursive: true, force: true })
  })

  it('publishes a main package whose optional dependency is the platform package, at the same version', () => {
    expect(published.optionalDependencies).toEqual({ [`${pkg.name}-${name}`]: pkg.version })
  })

  it('installs with no compiler invoked, and require, import and the daemon adapter all load and embed', () => {
    const r = installAndSmoke({ registryEnv: registry.env, modelDir: minilmDir(), referenceDir: reference('minilm') })
    expect(r.compilerCalls).toEqual([])
    expect(r.packages.sort()).toEqual([`${pkg.name}-${name}@${pkg.version}`, `${pkg.name}@${pkg.version}`].sort())
    expect(r.smoke.error).toBeUndefined()
    expect(r.smoke.steps).toEqual([
      'require: function',
      'import: function',
      expect.stringMatching(/^require daemon: .*NativeEmbeddingBackend/),
      expect.stringMatching(/^import daemon: .*NativeEmbeddingBackend/),
      'embed: 3 x 384',
      'close',
    ])
    expect(r.smoke.minCosine).toBeGreaterThanOrEqual(0.99999)
    // The binary came from the platform package, not from anywhere else on this machine.
    expect(r.smoke.binary).toEqual([`${pkg.name}-${name}/${pkg.napi.binaryName}.${name}.node`])
    // Reported, not asserted: timing goals live in `npm run release:local`.
    process.stderr.write(`[registry-install] npm install took ${r.installSeconds.toFixed(1)} s\n`)
  }, 300_000)
})
