// Which native binary fits this process, shared by the loader (index.js) and the install hook
// (scripts/install.mjs) so the two can never disagree.
'use strict'

function isMusl() {
  if (process.platform !== 'linux') return false
  try {
    return !process.report.getReport().header.glibcVersionRuntime
  } catch {
    return false
  }
}

/**
 * The napi-rs platform name of this process ("linux-x64-gnu", "darwin-arm64", "win32-x64-msvc", ...): the
 * suffix of a binary built here from source (scripts/build.mjs).
 */
function platformName() {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/**
 * The napi-rs platform name of a Rust target triple, as `napi artifacts` and `napi create-npm-dirs` name the
 * npm/<platform> packages: x86_64-unknown-linux-gnu -> linux-x64-gnu, x86_64-pc-windows-gnu -> win32-x64-gnu.
 */
function platformOfTarget(triple) {
  const [arch, , os, abi] = triple.split('-')
  const cpu = { x86_64: 'x64', aarch64: 'arm64' }[arch] ?? arch
  if (os === 'linux') return `linux-${cpu}-${abi}`
  if (os === 'darwin') return `darwin-${cpu}`
  if (os === 'windows') return `win32-${cpu}-${abi}`
  throw new Error(`no napi platform name for the target ${triple}`)
}

/**
 * Every platform name whose binary this process can load, best first. Windows takes either ABI: node.exe loads
 * a MinGW (windows-gnu) addon as well as an MSVC one, since napi-rs resolves Node-API at run time; the
 * release ships the MinGW build.
 */
function platformNames() {
  const name = platformName()
  return process.platform === 'win32' ? [name, name.replace(/-msvc$/, '-gnu')] : [name]
}

/**
 * The prebuilt packages that may carry this process's binary, best first. The CUDA build is its own package
 * for linux-x64-gnu, installed only on request and preferred when present.
 */
function prebuiltPackages(packageName) {
  const names = platformNames()
  const cuda = names[0] === 'linux-x64-gnu' ? [`${packageName}-${names[0]}-cuda`] : []
  return [...cuda, ...names.map((n) => `${packageName}-${n}`)]
}

/**
 * The platform package a release ships for this process (named by package.json's napi.targets), or null where
 * none ships: on Windows the MinGW build, although a local build is named after MSVC.
 */
function shippedPlatform(napiTargets) {
  const shipped = napiTargets.map(platformOfTarget)
  return platformNames().find((n) => shipped.includes(n)) ?? null
}

module.exports = { platformName, platformNames, platformOfTarget, prebuiltPackages, shippedPlatform }
