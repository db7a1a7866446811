#!/usr/bin/env bash
# Resolves a Kafka broker (KRaft, no ZooKeeper) from Maven Central into
# ~/.cache/waxflow/kafka/<version>/libs and prints that directory. No Debian package
# exists; the jars plus Java 17 are the whole broker. Idempotent: a complete cache is
# reused. Needs `mvn` and `java` (apt-get install -y maven openjdk-17-jre-headless).
set -euo pipefail
version="${KAFKA_VERSION:-4.1.1}"
root="${WAXFLOW_CACHE:-$HOME/.cache/waxflow}/kafka/$version"
if [[ -f "$root/.complete" ]]; then echo "$root/libs"; exit 0; fi
for tool in mvn java; do
  command -v "$tool" >/dev/null || { echo "kafka broker: $tool is missing; run: apt-get install -y maven openjdk-17-jre-headless" >&2; exit 1; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# log4j-slf4j-impl binds the slf4j-api 1.7 the broker pulls to log4j2, so the broker
# logs (to stdout, through the harness's log4j2 configuration).
cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.waxflow</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
mvn -B -q -f "$work/pom.xml" -Dmaven.repo.local="$work/m2" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$work/libs" >&2
rm -rf "$root"
mkdir -p "$root"
mv "$work/libs" "$root/libs"
touch "$root/.complete"
echo "$root/libs"
