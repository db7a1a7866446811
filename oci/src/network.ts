// Why a connection failed, in words: fetch and the Kubernetes client say only "fetch failed"
// and keep the cause (a socket or TLS error code) down their error's cause chain.

/** What a network or TLS error code means to someone pointing waxctl at a server. */
const NETWORK_CAUSES: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "no such host",
  EAI_AGAIN: "the host name could not be resolved",
  DEPTH_ZERO_SELF_SIGNED_CERT: "its TLS certificate is not trusted",
  SELF_SIGNED_CERT_IN_CHAIN: "its TLS certificate is not trusted",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "its TLS certificate is not trusted",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "its TLS certificate is not trusted",
  CERT_HAS_EXPIRED: "its TLS certificate has expired",
  ERR_TLS_CERT_ALTNAME_INVALID: "its TLS certificate is for another host name",
  EPROTO: "it does not speak TLS",
};

/** The first string `code` along an error's cause chain. */
function causeCode(err: unknown): string | undefined {
  for (let e = err; e !== null && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/** `connection refused (ECONNREFUSED)`, a bare code we have no words for, else the message. */
export function networkReason(err: unknown): string {
  const code = causeCode(err);
  if (code === undefined) return err instanceof Error ? err.message : String(err);
  const words = NETWORK_CAUSES[code];
  return words === undefined ? code : `${words} (${code})`;
}
