#!/usr/bin/env bash
# Starts the real services EOS's tests use, installing them first when missing (Debian, as root):
#   - a Docker engine (Debian docker.io), socket /var/run/docker.sock;
#   - an OCI registry (Debian docker-registry) on 127.0.0.1:5000, without auth or TLS, and a
#     private one on 127.0.0.1:5001 that wants a login (user eos, password eos-secret);
#   - the test image eos-test/busybox:1, a busybox-static root made locally (no registry can be
#     pulled from), imported into Docker and pushed to both registries;
#   - clang, lld, wasi-libc and the wasm32 compiler runtime, to build the example WebAssembly
#     plugin (C for wasm32-wasi);
#   - Podman (with catatonit, its init) serving its Docker-compatible API on
#     $EOS_TEST_PODMAN_SOCKET (default /run/podman/podman.sock), for the oci driver's tests.
#   - PostgreSQL on 127.0.0.1:$EOS_TEST_PG_PORT (default 55432), superuser postgres trusted on
#     loopback, for the repository suite and the CO on PostgreSQL (EOS_TEST_POSTGRES, default
#     postgres://postgres@127.0.0.1:55432/postgres).
#   - Chromium (Debian's), for the browser tests of the CO's pages (GraphiQL);
#   - the test OpenID Connect provider (npm oidc-provider, tests/oidc) with its Node packages,
#     installed from the lock file; Node.js from Debian when the machine has none;
#   - Python tools from PyPI in a virtual environment ($EOS_SERVICES_DIR/pytools): the client
#     generator openapi-python-client and the API tester schemathesis, for the API tests.
# Safe to run again: what already runs is left alone. Logs go to $EOS_SERVICES_DIR (default
# /tmp/eos-services). Tests read EOS_TEST_REGISTRY (default 127.0.0.1:5000) and
# EOS_TEST_PRIVATE_REGISTRY (default 127.0.0.1:5001).
set -euo pipefail

dir="${EOS_SERVICES_DIR:-/tmp/eos-services}"
registry="${EOS_TEST_REGISTRY:-127.0.0.1:5000}"
private="${EOS_TEST_PRIVATE_REGISTRY:-127.0.0.1:5001}"
podman_socket="${EOS_TEST_PODMAN_SOCKET:-/run/podman/podman.sock}"
mkdir -p "$dir"
# The Debian client matches the Debian engine (API 1.41); a newer one elsewhere on the PATH may not.
docker_cli=/usr/bin/docker

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-registry >/dev/null || missing+=(docker-registry)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing+=(busybox-static)
command -v curl >/dev/null || missing+=(curl)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v podman >/dev/null || missing+=(podman)
[ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
# The toolchain the WebAssembly plugin tests build their example plugin with (C for wasm32-wasi).
command -v clang >/dev/null || missing+=(clang)
# Headless Chromium, for the tests that load the CO's pages in a real browser.
command -v chromium >/dev/null || missing+=(chromium)
# Node.js, for the test OpenID Connect provider.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v wasm-ld >/dev/null || missing+=(lld)
[ -f /usr/lib/wasm32-wasi/libc.a ] || missing+=(wasi-libc)
ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || missing+=(libclang-rt-dev-wasm32)
# PostgreSQL: the binaries on the PATH, or Debian's under /usr/lib/postgresql.
pg_bin_dir() {
  local initdb
  initdb="$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -n 1)"
  [ -n "$initdb" ] && dirname "$(readlink -f "$initdb")"
}
pg_bin_dir >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "services: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$dir/apt.log"
fi

wait_for() { # what, seconds, command...
  local what="$1" limit="$2"
  shift 2
  for _ in $(seq 1 "$limit"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "services: $what did not come up within ${limit}s; see $dir" >&2
  return 1
}

status_of() { # URL → HTTP status code, 000 when nothing answers
  curl -s -o /dev/null -w '%{http_code}' "$1" || true
}

private_up() {
  [ "$(status_of "http://$private/v2/")" = 401 ]
}

if ! "$docker_cli" version >/dev/null 2>&1; then
  echo "services: starting dockerd"
  # 256 bridge networks of /24 rather than the default ~30 of /16 and /20: compose tests make
  # several networks each, and a run on two cores keeps a few suites going at once.
  nohup dockerd --default-address-pool base=10.213.0.0/16,size=24 >"$dir/dockerd.log" 2>&1 &
  wait_for "the Docker engine" 60 "$docker_cli" version
fi
# Networks an earlier run left behind (one cut short, or a driver that made them before refusing
# a component) use up the engine's address pools: EOS-labelled ones no container uses go.
"$docker_cli" network prune -f --filter label=eos.scope >/dev/null

registry_config() { # address, storage folder, extra YAML
  cat <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $2
  delete:
    enabled: true
http:
  addr: $1
$3
EOF
}

if ! curl -fsS "http://$registry/v2/" >/dev/null 2>&1; then
  echo "services: starting the registry on $registry"
  registry_config "$registry" "$dir/registry" "" >"$dir/registry.yml"
  nohup docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
  wait_for "the registry" 30 curl -fsS "http://$registry/v2/"
fi

if ! private_up; then
  echo "services: starting the private registry on $private"
  htpasswd -Bbn eos eos-secret >"$dir/htpasswd"
  registry_config "$private" "$dir/private" "auth:
  htpasswd:
    realm: eos-test
    path: $dir/htpasswd" >"$dir/private.yml"
  nohup docker-registry serve "$dir/private.yml" >"$dir/private.log" 2>&1 &
  wait_for "the private registry" 30 private_up
fi

if ! "$docker_cli" image inspect eos-test/busybox:1 >/dev/null 2>&1; then
  echo "services: building the test image eos-test/busybox:1"
  root="$(mktemp -d)"
  mkdir -p "$root/bin" "$root/tmp" "$root/www"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for tool in sh echo sleep cat ls httpd wget env kill true false test; do
    ln -s busybox "$root/bin/$tool"
  done
  echo "hello from eos" >"$root/www/index.html"
  tar -C "$root" -c . | "$docker_cli" import -c 'CMD ["/bin/sh"]' - eos-test/busybox:1 >/dev/null
  rm -rf "$root"
fi
# In the registry as 1 and 1.0.0 (Margo revisions are SemVer; an oci component's revision is its tag).
for tag in 1 1.0.0; do
  "$docker_cli" tag eos-test/busybox:1 "$registry/eos-test/busybox:$tag"
  "$docker_cli" push -q "$registry/eos-test/busybox:$tag" >/dev/null
done
# In the private registry under a login the tests know; the engine keeps no copy by that name,
# so a test's pull really goes to the registry.
export DOCKER_CONFIG="$dir/docker-config"
echo eos-secret | "$docker_cli" login -u eos --password-stdin "$private" >"$dir/login.log" 2>&1
"$docker_cli" tag eos-test/busybox:1 "$private/eos-test/busybox:1.0.0"
"$docker_cli" push -q "$private/eos-test/busybox:1.0.0" >/dev/null
"$docker_cli" logout "$private" >/dev/null
"$docker_cli" rmi "$private/eos-test/busybox:1.0.0" >/dev/null
# Podman pulls from the loopback registries over plain HTTP, as the Docker engine does. Its
# default raises each container's open-files limit to the maximum, which sandboxed machines
# (CI's among them) refuse; the tests' containers get ordinary limits.
mkdir -p /etc/containers/registries.conf.d /etc/containers/containers.conf.d
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n\n[[registry]]\nlocation = "%s"\ninsecure = true\n' \
  "$registry" "$private" >/etc/containers/registries.conf.d/eos-test.conf
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n' \
  >/etc/containers/containers.conf.d/eos-test.conf
podman_up() {
  curl -sf --unix-socket "$podman_socket" http://podman/_ping
}
if ! podman_up; then
  echo "services: starting podman's API on $podman_socket"
  mkdir -p "$(dirname "$podman_socket")"
  nohup podman system service --time=0 "unix://$podman_socket" >"$dir/podman.log" 2>&1 &
  wait_for "podman's API" 30 podman_up
fi
# PostgreSQL for tests: initdb refuses root, so the cluster belongs to the postgres user
# (created when missing). Tests make and drop a database each; fsync is off, as nothing here
# needs to survive a power loss of the test machine. pg_stat_statements counts the statements
# each test database runs (the GraphQL test counts the reads a query makes).
pg_port="${EOS_TEST_PG_PORT:-55432}"
pg_bin="$(pg_bin_dir)"
pg_data="$dir/postgres"
pg_up() {
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"
}
pg_counts_statements() {
  "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "SHOW shared_preload_libraries" 2>/dev/null |
    grep -q pg_stat_statements
}
if pg_up && ! pg_counts_statements; then
  echo "services: restarting PostgreSQL with pg_stat_statements"
  su -s /bin/sh postgres -c "'$pg_bin/pg_ctl' -D '$pg_data' -m fast stop" >"$dir/pg_ctl.log" 2>&1
fi
if ! pg_up; then
  echo "services: starting PostgreSQL on 127.0.0.1:$pg_port"
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  if [ ! -f "$pg_data/PG_VERSION" ]; then
    rm -rf "$pg_data"
    install -d -o postgres -m 700 "$pg_data"
    su -s /bin/sh postgres -c "'$pg_bin/initdb' -D '$pg_data' -U postgres --auth=trust" >"$dir/initdb.log" 2>&1
  fi
  su -s /bin/sh postgres -c "'$pg_bin/pg_ctl' -D '$pg_data' -l '$pg_data/server.log' -o \
    \"-p $pg_port -k '$pg_data' -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c shared_preload_libraries=pg_stat_statements\" start" \
    >"$dir/pg_ctl.log" 2>&1
  wait_for "PostgreSQL" 30 pg_up
fi
# The API tests' Python tools, pinned; Debian's python3 needs python3-venv for a venv.
pytools="$dir/pytools"
if [ ! -x "$pytools/bin/openapi-python-client" ] || [ ! -x "$pytools/bin/schemathesis" ]; then
  echo "services: installing openapi-python-client and schemathesis into $pytools"
  if ! python3 -m venv "$pytools" >"$dir/venv.log" 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >>"$dir/apt.log"
    python3 -m venv "$pytools"
  fi
  "$pytools/bin/pip" install -q openapi-python-client==0.29.1 schemathesis==4.32.5 >"$dir/pip.log" 2>&1 \
    || { echo "services: pip failed; see $dir/pip.log" >&2; exit 1; }
fi
# The test OpenID Connect provider's packages, as the lock file pins them.
oidc_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/oidc"
if [ ! -d "$oidc_dir/node_modules/oidc-provider" ] || [ "$oidc_dir/package-lock.json" -nt "$oidc_dir/node_modules" ]; then
  echo "services: installing the test OIDC provider's Node packages"
  (cd "$oidc_dir" && npm ci --no-audit --no-fund >"$dir/npm-oidc.log" 2>&1) \
    || { echo "services: npm ci failed; see $dir/npm-oidc.log" >&2; exit 1; }
fi
echo "services: docker, podman, PostgreSQL on 127.0.0.1:$pg_port, the registry on $registry and the private one on $private are up"
