/**
 * The errors of a lost or refusing peer, apart from the mesh (mesh.ts re-exports them) so
 * that failure.ts, which every worker thread loads, does not load TLS and the mesh.
 */

/** A peer process was lost or refused us; the cluster cannot go on. */
export class PeerError extends Error {
  override name = "PeerError";
}

/**
 * The cluster lost a peer, or could not form in time: nothing about this process or its
 * configuration is wrong, so re-forming the cluster (a restart) can cure it.
 */
export class PeerLostError extends PeerError {
  override name = "PeerLostError";
}
