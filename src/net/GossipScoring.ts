/**
 * The gossipsub score settings every peer runs with, apart from libp2p so that the network simulation
 * (net/sim/) scores peers with the very same numbers without loading libp2p.
 */
/** Score settings: an invalid message weighs heavily, and the thresholds cut a misbehaving peer off in steps. */
export const scoreThresholds = {
  gossipThreshold: -100,
  publishThreshold: -500,
  graylistThreshold: -1000,
  acceptPXThreshold: 10,
  opportunisticGraftThreshold: 5
}

export const topicScore = {
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 100,
  firstMessageDeliveriesWeight: 1,
  firstMessageDeliveriesDecay: 0.9,
  firstMessageDeliveriesCap: 50,
  // Delivery quotas in the mesh are off: heads and announcements are bursty, and a quiet peer is not a bad one.
  meshMessageDeliveriesWeight: 0,
  meshMessageDeliveriesDecay: 0.9,
  meshMessageDeliveriesCap: 10,
  meshMessageDeliveriesThreshold: 1,
  meshMessageDeliveriesWindow: 10,
  meshMessageDeliveriesActivation: 60_000,
  meshFailurePenaltyWeight: 0,
  meshFailurePenaltyDecay: 0.9,
  invalidMessageDeliveriesWeight: -100,
  invalidMessageDeliveriesDecay: 0.99
}
