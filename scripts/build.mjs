#!/usr/bin/env node
// Builds the native addon from source with cargo (release mode unless --debug) and places it where index.js
// looks: ./embedding-service.<platform>.node. Extra arguments go to cargo (e.g. --features cuda).
// Output goes to stderr: stdout stays clean for whatever runs this.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { platformName } = createRequire(import.meta.url)('../platform.js')
const args = process.argv.slice(2)
const debug = args.includes('--debug')
const cargoArgs = ['build', '--lib', ...(debug ? [] : ['--release']), ...args.filter((a) => a !== '--debug')]

process.stderr.write(`[embedding-service] cargo ${cargoArgs.join(' ')}\n`)
execFileSync('cargo', cargoArgs, { cwd: root, stdio: ['ignore', process.stderr, 'inherit'] })

const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target')
const file = { win32: 'embedding_service.dll', darwin: 'libembedding_service.dylib' }[process.platform]
  ?? 'libembedding_service.so'
const built = path.join(targetDir, debug ? 'debug' : 'release', file)
const dest = path.join(root, `embedding-service.${platformName()}.node`)
// Copy then rename, so a process loading the addon never sees a half-written file.
fs.copyFileSync(built, `${dest}.tmp`)
fs.renameSync(`${dest}.tmp`, dest)
process.stderr.write(`[embedding-service] built ${path.relative(root, dest)}\n`)
