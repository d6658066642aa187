// How each release target is built: one table shared by `npm run release:local` (every target, here) and the
// release workflow (one target per job, on the forge), so both run the same napi CLI command.
//   node scripts/release/targets.mjs build <target> <output dir>
//   node scripts/release/targets.mjs glibc-floor <file> [<most allowed, e.g. 2.28>]
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cacheRoot } from '../python.mjs'
import { devBin, zigBin } from './tools.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The oldest glibc a linux-gnu binary may need: RHEL 8, Debian 10, Ubuntu 18.10 and newer. */
export const GLIBC_FLOOR = '2.28'

const mingw = {
  CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER: 'x86_64-w64-mingw32-gcc',
  CC_x86_64_pc_windows_gnu: 'x86_64-w64-mingw32-gcc',
  AR_x86_64_pc_windows_gnu: 'x86_64-w64-mingw32-ar',
}

/**
 * napi build arguments per target. Linux builds link with zig (cargo-zigbuild, napi's -x): gnu against
 * glibc 2.28's symbols, whatever the build machine's glibc; musl statically. Windows builds with MinGW-w64
 * (MSVC's libraries cannot be had from a package registry). Apple targets build natively on macOS runners;
 * elsewhere zig links x86_64 without an SDK, and arm64 cannot be built (`elsewhere` says why).
 */
export const TARGETS = {
  'x86_64-unknown-linux-gnu': { args: ['--target', `x86_64-unknown-linux-gnu.${GLIBC_FLOOR}`, '-x'], via: `zig, glibc ${GLIBC_FLOOR}` },
  'aarch64-unknown-linux-gnu': { args: ['--target', `aarch64-unknown-linux-gnu.${GLIBC_FLOOR}`, '-x'], via: `zig, glibc ${GLIBC_FLOOR}` },
  'x86_64-unknown-linux-musl': { args: ['--target', 'x86_64-unknown-linux-musl', '-x'], via: 'zig, static musl' },
  'aarch64-unknown-linux-musl': { args: ['--target', 'aarch64-unknown-linux-musl', '-x'], via: 'zig, static musl' },
  'x86_64-pc-windows-gnu': { args: ['--target', 'x86_64-pc-windows-gnu'], via: 'MinGW-w64', env: mingw },
  // Elsewhere zig links it without an SDK. MACOSX_DEPLOYMENT_TARGET is Rust's own default for this target, said
  // aloud because zig would otherwise compile C for a newer macOS, where mimalloc wants an SDK header (below).
  'x86_64-apple-darwin': { args: ['--target', 'x86_64-apple-darwin'], zigArgs: ['-x'], zigEnv: { MACOSX_DEPLOYMENT_TARGET: '10.12' }, via: 'Xcode on macOS; zig elsewhere' },
  'aarch64-apple-darwin': {
    args: ['--target', 'aarch64-apple-darwin'],
    macArgs: ['--features', 'metal'],
    via: 'Xcode with Metal on macOS',
    // Why it is built on macOS only, found by trying with zig: arm64 macOS starts at 11.0, and for macOS 10.15
    // and newer mimalloc's C source takes random bytes from CommonCrypto (<CommonCrypto/CommonRandom.h>), a
    // header of Apple's SDK, which zig does not carry and no package registry may (Apple's licence). Metal is
    // an SDK framework as well.
    elsewhere: 'needs the macOS SDK: mimalloc includes <CommonCrypto/CommonCryptoError.h> for macOS >= 10.15 (arm64 macOS starts at 11.0), and Metal is an SDK framework; zig carries neither, and no package registry carries the SDK',
  },
}

/**
 * napi-build links windows-gnu addons with `-lnode` and panics unless a folder holding `libnode.dll` is found
 * (LIBNODE_PATH); that suits MSYS2's Node, not nodejs.org's node.exe. napi-rs resolves every Node-API function
 * from the host process at run time (napi's default `dyn-symbols` feature), so the addon imports nothing from
 * Node: an empty import library (named for node.exe, made by MinGW's dlltool) satisfies the link, and the
 * placeholder libnode.dll only the folder check (ld takes libnode.dll.a first). `objdump -p` of the result
 * shows no node.exe import.
 */
function libnodeStub() {
  const dir = path.join(cacheRoot(), 'release-tools', 'libnode-stub')
  if (!fs.existsSync(path.join(dir, 'libnode.dll.a'))) {
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, 'node.def'), 'LIBRARY node.exe\nEXPORTS\n')
    execFileSync('x86_64-w64-mingw32-dlltool', ['--input-def', path.join(dir, 'node.def'), '--dllname', 'node.exe', '--output-lib', path.join(dir, 'libnode.dll.a')])
    fs.writeFileSync(path.join(dir, 'libnode.dll'), '')
  }
  return dir
}

/**
 * The `napi build` arguments for `target` on a host (`darwin` or another): nothing is installed or run.
 * --no-js and --dts elsewhere keep napi from replacing the hand-written index.js and index.d.ts.
 */
export function napiArgs(target, outputDir, host = process.platform) {
  const how = TARGETS[target]
  if (!how) throw new Error(`no build recipe for ${target} (targets: ${Object.keys(TARGETS).join(', ')})`)
  const onMac = host === 'darwin'
  const apple = target.includes('apple')
  if (apple && !onMac && !how.zigArgs) throw new Error(`${target} cannot be built here: ${how.elsewhere}`)
  const extra = apple ? (onMac ? how.macArgs ?? [] : how.zigArgs) : []
  return ['build', '--platform', '--release', ...how.args, ...extra, '--no-js', '--dts', 'target/napi-generated.d.ts', '--output-dir', outputDir]
}

/** The napi build command line for `target` on this host, with the toolchains it needs installed: {args, env}. */
export function napiBuild(target, outputDir, log = () => {}) {
  const how = TARGETS[target]
  const args = napiArgs(target, outputDir)
  const apple = target.includes('apple')
  const onMac = process.platform === 'darwin'
  const usesZig = args.includes('-x')
  const env = {
    ...how.env,
    ...(apple && !onMac ? how.zigEnv : {}),
    ...(usesZig ? { PATH: `${zigBin(log)}${path.delimiter}${process.env.PATH}` } : {}),
    ...(target.endsWith('windows-gnu') ? { LIBNODE_PATH: libnodeStub() } : {}),
  }
  return { args: [devBin('@napi-rs/cli', 'napi'), ...args], env }
}

/** The newest GLIBC_x.y symbol version a binary needs (null for none), from its dynamic symbol table. */
export function glibcFloor(file) {
  const symbols = execFileSync('objdump', ['-T', file], { encoding: 'utf8', maxBuffer: 1 << 28 })
  const versions = [...new Set(symbols.match(/GLIBC_\d+(\.\d+)+/g) ?? [])].map((v) => v.slice('GLIBC_'.length))
  versions.sort(compareVersions)
  return versions.at(-1) ?? null
}

/** The DLLs a Windows binary imports (MinGW's objdump reads its import table). */
export function windowsImports(file) {
  const out = execFileSync('x86_64-w64-mingw32-objdump', ['-p', file], { encoding: 'utf8', maxBuffer: 1 << 28 })
  return [...new Set([...out.matchAll(/DLL Name: (\S+)/g)].map((m) => m[1]))]
}

/**
 * Imports of MinGW's own runtime (libstdc++-6, libgcc_s_seh-1, libwinpthread-1: every one named lib*.dll),
 * which a user's Windows lacks; the Windows build must link them statically. Wine and a runner whose PATH holds
 * a MinGW bin folder would hide the gap, so the import table is read instead.
 */
export function mingwRuntimeImports(file) {
  return windowsImports(file).filter((dll) => /^lib.*\.dll$/i.test(dll))
}

export const compareVersions = (a, b) => a.localeCompare(b, undefined, { numeric: true })

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command, a, b] = process.argv.slice(2)
  if (command === 'build') {
    const { args, env } = napiBuild(a, path.resolve(b ?? '.'), (l) => process.stderr.write(`${l}\n`))
    process.stderr.write(`napi ${args.slice(1).join(' ')}\n`)
    const r = spawnSync(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: 'inherit' })
    process.exit(r.status ?? 1)
  } else if (command === 'dll-imports') {
    const bad = mingwRuntimeImports(a)
    process.stdout.write(`${path.basename(a)} imports ${windowsImports(a).join(', ')}\n`)
    if (bad.length) {
      process.stderr.write(`it needs MinGW's runtime DLLs, which Windows does not have: ${bad.join(', ')}\n`)
      process.exit(1)
    }
  } else if (command === 'glibc-floor') {
    const floor = glibcFloor(a)
    process.stdout.write(`${path.basename(a)} needs glibc ${floor ?? '(none)'}\n`)
    if (b && floor && compareVersions(floor, b) > 0) {
      process.stderr.write(`that is newer than the release's floor, ${b}\n`)
      process.exit(1)
    }
  } else {
    process.stderr.write('usage: targets.mjs build <target> <output dir> | glibc-floor <file> [<max>] | dll-imports <file>\n')
    process.exit(2)
  }
}
