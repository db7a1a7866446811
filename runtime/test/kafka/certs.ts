/**
 * Certificates for a SASL_SSL broker, made by openssl in a temporary directory: a CA, a
 * broker certificate it signs for 127.0.0.1, a client certificate, and an unrelated CA
 * that a client must refuse the broker with.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Certificates {
  readonly dir: string;
  /** PEM of the CA that signed the broker's certificate. */
  readonly caFile: string;
  /** PEM of a CA that signed nothing the broker has. */
  readonly otherCaFile: string;
  /** The broker's key (PKCS#8, unencrypted) and certificate. */
  readonly brokerKeyFile: string;
  readonly brokerCertFile: string;
  /** A client certificate and key signed by the CA. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

function openssl(dir: string, args: readonly string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

function ca(dir: string, name: string): void {
  openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`]);
  openssl(
    dir,
    ["req", "-x509", "-new", "-key", `${name}.key`, "-subj", `/CN=${name}`, "-days", "2"]
      .concat(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
      .concat(["-out", `${name}.pem`]),
  );
}

function signed(dir: string, name: string, extensions: string): void {
  openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`]);
  openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${name}`, "-out", `${name}.csr`]);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `${extensions}\n`);
  openssl(
    dir,
    ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"].concat([
      "-days",
      "2",
      "-extfile",
      ext,
      "-out",
      `${name}.pem`,
    ]),
  );
}

export function makeCertificates(): Certificates {
  const dir = mkdtempSync(join(tmpdir(), "waxflow-kafka-certs-"));
  ca(dir, "ca");
  ca(dir, "other-ca");
  signed(dir, "broker", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth");
  signed(dir, "client", "extendedKeyUsage=clientAuth");
  return {
    dir,
    caFile: join(dir, "ca.pem"),
    otherCaFile: join(dir, "other-ca.pem"),
    brokerKeyFile: join(dir, "broker.key"),
    brokerCertFile: join(dir, "broker.pem"),
    clientCertFile: join(dir, "client.pem"),
    clientKeyFile: join(dir, "client.key"),
  };
}
