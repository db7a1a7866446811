#!/usr/bin/env bash
# Resolves a Kafka broker (KRaft, no ZooKeeper) from Maven Central into
# $WAXFLOW_CACHE/kafka/<version>/libs and prints that directory. No Debian package
# exists; the jars plus Java 17 are the whole broker. Idempotent: a complete cache is
# reused; test files starting brokers at once resolve it once (a lock beside it). Installs
# Debian's maven and Java 17 when they are missing.
source "$(dirname "$0")/../../../e2e/toolchain/lib.sh"
version="${KAFKA_VERSION:-4.1.1}"
root="$WAXFLOW_CACHE/kafka/$version"
if [[ -f "$root/.complete" ]]; then echo "$root/libs"; exit 0; fi
mkdir -p "$(dirname "$root")"
exec {lock}>>"$root.lock"
flock "$lock"
if [[ -f "$root/.complete" ]]; then echo "$root/libs"; exit 0; fi
need_pkg java openjdk-17-jre-headless
need_pkg mvn maven
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
log "resolving Kafka $version from Maven Central into $root"
mvn -B -q -f "$work/pom.xml" -Dmaven.repo.local="$work/m2" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$work/libs" >&2
rm -rf "$root"
mkdir -p "$root"
mv "$work/libs" "$root/libs"
touch "$root/.complete"
echo "$root/libs"
