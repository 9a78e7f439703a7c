#!/usr/bin/env bash
# Installs what the local stack runs, idempotently, and says what it does:
#   - Debian packages, only those whose programs are missing:
#       redis-server (redis-server), prometheus (prometheus, promtool),
#       prometheus-alertmanager (prometheus-alertmanager, amtool),
#       a Java runtime >= 17 (java) and maven (mvn) for Kafka;
#   - Apache Kafka's jars from Maven Central (pinned in deploy/local/kafka/pom.xml),
#     downloaded with strict checksums, then checked against the committed
#     deploy/local/kafka/jars.sha256. Skipped when the jars are present and verified.
#
# Usage: deploy/local/install.sh [--write-kafka-sums]
#   --write-kafka-sums  after a version bump in pom.xml: download, then rewrite jars.sha256
#                       from what Maven verified (review the diff before committing it).
# Environment: METERWATCH_STACK_DIR (default <repo>/.stack): the jars go to $STACK_DIR/kafka/libs.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK_DIR="${METERWATCH_STACK_DIR:-$REPO_ROOT/.stack}"
KAFKA_POM="$REPO_ROOT/deploy/local/kafka/pom.xml"
KAFKA_SUMS="$REPO_ROOT/deploy/local/kafka/jars.sha256"
KAFKA_LIBS="$STACK_DIR/kafka/libs"
WRITE_SUMS=0
[[ "${1:-}" == "--write-kafka-sums" ]] && WRITE_SUMS=1

say() { echo ">> install: $*"; }
die() { echo ">> install: ERROR: $*" >&2; exit 1; }

# One install at a time per state folder (several `make` targets may run at once).
mkdir -p "$STACK_DIR"
exec 9>"$STACK_DIR/.install.lock"
flock 9

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot apt-get install"
    SUDO="sudo"
fi

# ---------------------------------------------------------------- Debian packages
# program -> package that provides it
declare -A PACKAGE_OF=(
    [redis-server]=redis-server
    [prometheus]=prometheus
    [promtool]=prometheus
    [prometheus-alertmanager]=prometheus-alertmanager
    [amtool]=prometheus-alertmanager
    [java]=default-jre-headless
    [mvn]=maven
)
missing=()
for program in redis-server prometheus promtool prometheus-alertmanager amtool java mvn; do
    if ! command -v "$program" >/dev/null 2>&1; then
        package="${PACKAGE_OF[$program]}"
        [[ " ${missing[*]:-} " == *" $package "* ]] || missing+=("$package")
    fi
done

if ((${#missing[@]})); then
    say "missing Debian packages: ${missing[*]}"
    # Debian's postinst scripts would start their own redis/prometheus/alertmanager
    # on the default ports (6379/9090/9093). The stack never uses those (its ports are
    # settings, off the defaults), but a daemon we did not ask for is noise, so while
    # apt runs a policy-rc.d forbids service starts, unless the machine already has one.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e "$policy" ]]; then
        say "temporary $policy: Debian postinst will not start system daemons"
        printf '#!/bin/sh\n# meterwatch install.sh: no service starts during install\nexit 101\n' |
            $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        trap '$SUDO rm -f "$policy"' EXIT
    fi
    say "apt-get update"
    # Lock::Timeout: wait for another apt run instead of failing on its lock
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q
    say "apt-get install -y --no-install-recommends ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
        --no-install-recommends "${missing[@]}"
else
    say "Debian packages present (redis-server, prometheus, prometheus-alertmanager, java, mvn)"
fi

java_major="$(java -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java.specification.version = //p')"
[[ "${java_major:-0}" -ge 17 ]] 2>/dev/null ||
    die "Kafka 4 needs Java >= 17, found '${java_major:-none}' ($(command -v java))"

# ---------------------------------------------------------------- Kafka jars
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")"

jars_verified() {
    [[ -d "$KAFKA_LIBS" && -s "$KAFKA_SUMS" ]] || return 1
    # every listed jar present with its sha256, and nothing else on the classpath
    (cd "$KAFKA_LIBS" && sha256sum --quiet --strict --check "$KAFKA_SUMS") >/dev/null 2>&1 ||
        return 1
    local on_disk listed
    on_disk="$(find "$KAFKA_LIBS" -maxdepth 1 -name '*.jar' | wc -l)"
    listed="$(grep -c '\.jar$' "$KAFKA_SUMS")"
    [[ "$on_disk" == "$listed" ]]
}

if ((WRITE_SUMS == 0)) && jars_verified; then
    say "Kafka $kafka_version jars present and verified in $KAFKA_LIBS ($(wc -l <"$KAFKA_SUMS") jars)"
    exit 0
fi

if [[ -d "$KAFKA_LIBS" ]]; then
    say "Kafka jars in $KAFKA_LIBS incomplete or not matching jars.sha256: removing them"
    rm -rf "$KAFKA_LIBS"
fi
mkdir -p "$KAFKA_LIBS"
say "mvn: Kafka $kafka_version jars from Maven Central -> $KAFKA_LIBS (strict checksums)"
# -C: fail on a checksum mismatch instead of warning. The local repository (~/.m2)
# is a cache shared with other Maven use; a corrupt entry there fails the check below.
# (sed: Maven 3.8 -q still prints colour resets; pipefail keeps mvn's exit status)
mvn -q -B -C -f "$KAFKA_POM" -Dkafka.libs.dir="$KAFKA_LIBS" dependency:copy-dependencies 2>&1 |
    sed 's/\x1b\[[0-9;]*m//g'

if ((WRITE_SUMS)); then
    (cd "$KAFKA_LIBS" && sha256sum -- *.jar) >"$KAFKA_SUMS"
    say "wrote $KAFKA_SUMS ($(wc -l <"$KAFKA_SUMS") jars): review and commit it"
    exit 0
fi

if ! jars_verified; then
    (cd "$KAFKA_LIBS" && sha256sum --strict --check "$KAFKA_SUMS" 2>&1 | grep -v ': OK$') || true
    rm -rf "$KAFKA_LIBS"
    die "downloaded Kafka jars do not match $KAFKA_SUMS (removed them). A version bump in \
pom.xml needs: deploy/local/install.sh --write-kafka-sums"
fi
say "Kafka $kafka_version jars downloaded and verified ($(wc -l <"$KAFKA_SUMS") jars)"
