/** Keys, accounts and signers for tests of signed commands. */
import { Effect, Layer } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { SignedCommands } from "../../src/domain/CommandAuthority.js"
import { accountIdOf, ed25519 } from "../../src/domain/Ed25519.js"
import { AccountId } from "../../src/domain/Money.js"
import type { SigningKey } from "../../src/domain/SignedCommand.js"
import type { CommandSigner } from "../../src/rpc/CommandSigning.js"
import { signingAs } from "../../src/rpc/CommandSigning.js"
import { sequencedHere } from "../../src/rpc/Sequencing.js"

export interface TestKey extends SigningKey {
  readonly account: AccountId
}

/** A fresh key, or the same key every run for a given `seedText`. */
export const testKey = (seedText?: string): TestKey => {
  const seed = seedText === undefined ? crypto.randomBytes(32) : crypto.createHash("sha256").update(seedText).digest()
  const publicKey = ed25519.publicKeyOf(seed)
  return { seed, publicKey, account: AccountId.make(accountIdOf(publicKey)) }
}

export const DEV_NETWORK = "edge-net-dev"

export const as = (key: SigningKey, options: Partial<Omit<CommandSigner, "key">> = {}) =>
  signingAs({ key, network: DEV_NETWORK, ...options })

/**
 * The SignedCommands middleware as a pass-through (and every economy RPC run here), for tests of an
 * RPC contract's handlers alone: signatures and authority have their own tests
 * (test/rpc/SignedCommands.test.ts, test/node/Attacks.test.ts), forwarding to a sequencer its own.
 */
export const acceptUnsigned = Layer.merge(
  Layer.succeed(SignedCommands, SignedCommands.of(({ next }) => next)),
  sequencedHere
)

export const writeKeyFile = (directory: string, name: string, key: SigningKey) =>
  Effect.sync(() => {
    fs.mkdirSync(directory, { recursive: true })
    fs.writeFileSync(
      path.join(directory, `${name}.key`),
      JSON.stringify({
        type: "ed25519",
        keyId: name,
        publicKey: key.publicKey,
        seed: Buffer.from(key.seed).toString("hex")
      }),
      { mode: 0o600 }
    )
    fs.writeFileSync(
      path.join(directory, `${name}.pub`),
      JSON.stringify({ type: "ed25519", keyId: name, publicKey: key.publicKey })
    )
  })

/** The operator key of a node's data dir: its node key, the default operator at genesis. */
export const operatorKeyOf = (dataDir: string): TestKey => {
  const file = JSON.parse(fs.readFileSync(path.join(dataDir, "node.key"), "utf8")) as { readonly seed: string }
  const seed = Buffer.from(file.seed, "hex")
  const publicKey = ed25519.publicKeyOf(seed)
  return { seed, publicKey, account: AccountId.make(accountIdOf(publicKey)) }
}
