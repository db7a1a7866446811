/** The cluster secret of every test cluster: multi-process runs refuse to start without one. */
export const TEST_SECRET = "waxflow-test-cluster-secret-0123456789";
export const TEST_SECRET_BYTES = Buffer.from(TEST_SECRET, "utf8");
