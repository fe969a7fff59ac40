/**
 * Which key signs a CLI command, and which account a name means. Keys live in the trust store
 * (`~/.edge-net/keys/NAME.key`, made by `edge-net models keys generate NAME`); an account argument
 * may be a key's name (its account id is derived from the public key) or an account id itself.
 */
import { Options } from "@effect/cli"
import { Effect, Option, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { keysDirectory, loadConfig } from "../content/ModelsConfig.js"
import { keyPairFromSeed } from "../content/NodeKey.js"
import { seedFromKeyText } from "../content/TrustStore.js"
import { accountIdOf } from "../domain/Ed25519.js"
import { AccountId } from "../domain/Money.js"
import type { SigningKey } from "../domain/SignedCommand.js"
import { keyFile } from "../layers/NodeConfig.js"
import { signingAs } from "../rpc/CommandSigning.js"
import { CliError } from "./CliError.js"
import { NodeClient } from "./NodeClient.js"
import { parseAccountId, settingsFor } from "./Shared.js"

export const keyOption = Options.text("key").pipe(
  Options.withDescription(
    "the key that signs: a name in ~/.edge-net/keys or a key file; repeat it for k-of-n operator commands"
  ),
  Options.repeated
)

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/

const keysDir = loadConfig().pipe(
  Effect.map(keysDirectory),
  Effect.mapError((error) => new CliError({ message: error.message }))
)

const PublicKeyFile = Schema.parseJson(
  Schema.Struct({ publicKey: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)) })
)
const decodePublicKeyFile = Schema.decodeUnknownOption(PublicKeyFile)

export interface NamedKey extends SigningKey {
  readonly name: string
}

const readKey = (file: string, name: string) =>
  Effect.try({
    try: (): NamedKey => {
      const { seed } = seedFromKeyText(fs.readFileSync(file, "utf8"))
      return { name, seed, publicKey: keyPairFromSeed(seed).publicKey }
    },
    catch: (cause) =>
      new CliError({ message: `key ${file}: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

/** A signing key by name (`<keys>/<name>.key`) or by file path. */
export const loadKey = (nameOrPath: string) =>
  Effect.gen(function*() {
    const directory = yield* keysDir
    const stored = KEY_NAME.test(nameOrPath) ? path.join(directory, `${nameOrPath}.key`) : undefined
    if (stored !== undefined && fs.existsSync(stored)) return yield* readKey(stored, nameOrPath)
    if (fs.existsSync(nameOrPath)) return yield* readKey(nameOrPath, path.basename(nameOrPath))
    return yield* Effect.fail(
      new CliError({
        message:
          `no signing key "${nameOrPath}" in ${directory} and no such file (create one: edge-net models keys generate ${
            KEY_NAME.test(nameOrPath) ? nameOrPath : "NAME"
          })`
      })
    )
  })

/** An account argument: the name of a key in the store means that key's account; anything else must be an account id. */
export const parseAccount = (text: string) =>
  Effect.gen(function*() {
    if (KEY_NAME.test(text)) {
      const directory = yield* keysDir
      for (const file of [path.join(directory, `${text}.key`), path.join(directory, `${text}.pub`)]) {
        if (!fs.existsSync(file)) continue
        const publicKey = file.endsWith(".key")
          ? (yield* readKey(file, text)).publicKey
          : Option.getOrUndefined(decodePublicKeyFile(fs.readFileSync(file, "utf8")))?.publicKey
        if (publicKey !== undefined) return AccountId.make(accountIdOf(publicKey))
      }
    }
    return yield* parseAccountId(text)
  })

/** Runs `use` with its commands signed by `keys` (the first signs, the rest co-sign) for the node's network. */
const signedWith = <A, E, R>(keys: ReadonlyArray<NamedKey>, use: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const client = yield* NodeClient
    const info = yield* client.info
    if (info.network === null) {
      return yield* Effect.fail(
        new CliError({ message: "the node has no network charter: start it once first (edge-net node start)" })
      )
    }
    const [key, ...cosigners] = keys
    return yield* signingAs({ key: key!, cosigners, network: info.network })(use)
  })

/**
 * Signs as the owner of `account` (an account argument): with `--key`, else with the key of that name.
 * The node checks that the signer's account is the one the command acts on.
 */
export const asOwner = (keys: ReadonlyArray<string>, account: string) => <A, E, R>(use: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const names = keys.length > 0 ? keys : [account]
    if (keys.length === 0 && !KEY_NAME.test(account)) {
      return yield* Effect.fail(new CliError({ message: `which key signs for ${account}? pass --key NAME` }))
    }
    const loaded = yield* Effect.forEach(names, loadKey)
    return yield* signedWith(loaded, use)
  })

/**
 * Signs a command any key may send (resolve an auction, queue or execute a proposal): `--key`, else a
 * fresh key made for this one command, since the command's own rules decide whether it runs.
 */
export const asAnyKey = (keys: ReadonlyArray<string>) => <A, E, R>(use: Effect.Effect<A, E, R>) =>
  Effect.flatMap(
    keys.length > 0 ? Effect.forEach(keys, loadKey) : Effect.sync(() => [freshKey()]),
    (loaded) => signedWith(loaded, use)
  )

const freshKey = (): NamedKey => {
  const seed = globalThis.crypto.getRandomValues(new Uint8Array(32))
  return { name: "one-time", seed, publicKey: keyPairFromSeed(seed).publicKey }
}

/**
 * Signs as the owner of `account` together with the operators (seeding the pool): `--key` (the owner's
 * key first, then operator keys), else the key named `account` and the node key of the data directory.
 */
export const asOwnerAndOperator =
  (keys: ReadonlyArray<string>, account: string, data: Option.Option<string>) =>
  <A, E, R>(use: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      if (keys.length > 0) return yield* signedWith(yield* Effect.forEach(keys, loadKey), use)
      const owner = yield* loadKey(account)
      const nodeKey = keyFile(yield* settingsFor(data))
      const operators = fs.existsSync(nodeKey) ? [yield* readKey(nodeKey, "node")] : []
      return yield* signedWith([owner, ...operators], use)
    })

/** Signs as the network's operator(s): `--key` (repeatable), else the node key of the data directory. */
export const asOperator =
  (keys: ReadonlyArray<string>, data: Option.Option<string>) => <A, E, R>(use: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      if (keys.length > 0) return yield* signedWith(yield* Effect.forEach(keys, loadKey), use)
      const nodeKey = keyFile(yield* settingsFor(data))
      if (!fs.existsSync(nodeKey)) {
        return yield* Effect.fail(
          new CliError({
            message: `an operator command needs an operator key: pass --key NAME|FILE (no node key at ${nodeKey})`
          })
        )
      }
      return yield* signedWith([yield* readKey(nodeKey, "node")], use)
    })
