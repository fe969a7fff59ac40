/**
 * HTTP contract of the node's content: blobs by SHA-256 with Range and ETag (how peers and the CLI
 * fetch model bytes) and an IPFS trustless gateway over the same bytes, so any node is a gateway.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { BlobDigest } from "../content/BlobStore.js"
import { BlobHolders } from "../content/RegistryTransfer.js"

const Bytes = HttpApiSchema.Uint8Array({ contentType: "application/octet-stream" })

export const BlobUploaded = Schema.Struct({
  digest: Schema.String,
  size: Schema.Number,
  cid: Schema.String
})

export class ContentApi extends HttpApiGroup.make("content")
  .add(
    HttpApiEndpoint.get("blob", "/v1/blobs/:digest")
      .setPath(Schema.Struct({ digest: BlobDigest }))
      .addSuccess(Bytes)
      .annotate(
        OpenApi.Description,
        "The bytes of a blob. Supports `Range: bytes=a-b` (206 with Content-Range; 416 when unsatisfiable), a strong `ETag` " +
          "(the digest) with `If-None-Match` (304) and `If-Range`."
      )
  )
  .add(
    HttpApiEndpoint.head("blobHead", "/v1/blobs/:digest")
      .setPath(Schema.Struct({ digest: BlobDigest }))
      .annotate(OpenApi.Description, "Whether the node holds a blob: Content-Length, ETag and Accept-Ranges, no body.")
  )
  .add(
    HttpApiEndpoint.put("uploadBlob", "/v1/blobs/:digest")
      .setPath(Schema.Struct({ digest: BlobDigest }))
      .setPayload(Bytes)
      .addSuccess(BlobUploaded, { status: 201 })
      .annotate(
        OpenApi.Description,
        "Uploads an artifact of a published manifest: the signed manifest is the credential, so only digests that a " +
          "manifest in this registry lists are accepted (403), never more bytes than it declares (413, cut off at the first " +
          "byte over), within the blob store's cap (507), and the bytes must hash to the digest (400)."
      )
  )
  .add(
    HttpApiEndpoint.get("blobHolders", "/v1/blobs/:digest/holders")
      .setPath(Schema.Struct({ digest: BlobDigest }))
      .addSuccess(BlobHolders)
      .annotate(
        OpenApi.Description,
        "The peers that announced on gossip, in the last two minutes, that they hold a blob, with the URL each serves " +
          "it at (`<url>/v1/blobs/<digest>`): more sources for a pull. A holder proves nothing; bytes are checked as always."
      )
  )
  .add(
    HttpApiEndpoint.get("ipfs", "/ipfs/:cid")
      .setPath(Schema.Struct({ cid: Schema.String }))
      .setUrlParams(Schema.Struct({ format: Schema.optional(Schema.Literal("raw", "car")) }))
      .addSuccess(Bytes)
      .annotate(
        OpenApi.Description,
        "IPFS trustless gateway. `?format=raw` (or `Accept: application/vnd.ipld.raw`) returns one block, " +
          "`?format=car` (or `Accept: application/vnd.ipld.car`) the whole DAG under the CID as a CARv1 in depth-first order; " +
          "without either, the file's bytes."
      )
  )
{}
