// A private npm registry for release rehearsals: Verdaccio (from the npm registry) on 127.0.0.1 only, with no
// uplinks, so nothing published to it can leave this machine and nothing installed from it comes from elsewhere.
// Used by `npm run release:local` and __test__/registry-install.test.mjs.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/**
 * Starts Verdaccio on a free loopback port with its storage in a fresh folder and one user, and writes an
 * .npmrc that points npm at it with that user's token. `stop()` ends the server and removes the folder.
 */
export async function startRegistry({ log = () => {} } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'embedding-service-registry-'))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  const config = path.join(dir, 'config.yaml')
  fs.writeFileSync(
    config,
    [
      `storage: ${JSON.stringify(path.join(dir, 'storage'))}`,
      'auth:',
      '  htpasswd:',
      `    file: ${JSON.stringify(path.join(dir, 'htpasswd'))}`,
      '    max_users: 10',
      'uplinks: {}',
      'packages:',
      "  '**':",
      '    access: $all',
      '    publish: $authenticated',
      '    unpublish: $authenticated',
      'web:',
      '  enable: false',
      'max_body_size: 200mb',
      'log:',
      '  type: file',
      `  path: ${JSON.stringify(path.join(dir, 'verdaccio.log'))}`,
      '  level: warn',
      '',
    ].join('\n'),
  )
  const bin = require.resolve('verdaccio/bin/verdaccio')
  // Its output goes to a file, not a pipe: the callers block in execFileSync (npm publish, npm install) while
  // it runs, and a pipe nobody drains would stall it.
  const outFile = path.join(dir, 'verdaccio.out')
  const out = fs.openSync(outFile, 'w')
  const child = spawn(process.execPath, [bin, '--config', config, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', out, out] })
  fs.closeSync(out)
  const output = () => fs.readFileSync(outFile, 'utf8')
  const exited = new Promise((resolve) => child.once('exit', resolve))

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(killer)
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    // Verdaccio answers /-/ping once it listens; the child's exit ends the wait with its output.
    const deadline = Date.now() + 60_000
    for (;;) {
      if (child.exitCode !== null) throw new Error(`verdaccio exited (${child.exitCode}):\n${output()}`)
      try {
        const res = await fetch(`${url}-/ping`)
        if (res.ok) break
      } catch {}
      if (Date.now() > deadline) throw new Error(`verdaccio did not answer on ${url} within 60 s:\n${output()}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    const user = 'release-rehearsal'
    const res = await fetch(`${url}-/user/org.couchdb.user:${user}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: user, password: 'rehearsal-only-password' }),
    })
    if (!res.ok) throw new Error(`verdaccio refused the user: ${res.status} ${await res.text()}`)
    const { token } = await res.json()
    const npmrc = path.join(dir, 'npmrc')
    fs.writeFileSync(npmrc, `registry=${url}\n//127.0.0.1:${port}/:_authToken=${token}\n`)
    log(`verdaccio on ${url} (storage ${dir})`)
    // npm reads these from the environment: the registry, its token, and a cache of its own, so a package
    // republished under the same version is never served from an earlier run's cache.
    const env = {
      npm_config_userconfig: npmrc,
      npm_config_registry: url,
      npm_config_cache: path.join(dir, 'npm-cache'),
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    }
    return { url, dir, npmrc, env, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
