#!/usr/bin/env bash
# Prepare a Debian/Ubuntu host for pyrlab, and with --tests for its test suite. Idempotent;
# safe to rerun.
#
#   bash .ci/setup-host.sh                   what pyrlab's main job needs (the README's first
#                                            command): Docker (docker.io), mmdebstrap (the
#                                            bootstrapped base, root or not), debootstrap, pipx
#   bash .ci/setup-host.sh --emulation       also emulation of the other platform pyrlab
#                                            builds for (arm64 on amd64, amd64 on arm64):
#                                            qemu-user-static and binfmt-support, binfmt_misc
#                                            mounted, the qemu handler registered with flag F
#   bash .ci/setup-host.sh --tests           also what the test suite needs (`.ci/run`):
#                                            emulation (as --emulation; a host that cannot
#                                            have it only gets a warning),
#                                            Podman and its helpers, ShellCheck, apt-cacher-ng,
#                                            R (r-base-core, for `R CMD build`), chromium,
#                                            python3-venv, a Distribution registry
#                                            (docker-registry) and htpasswd (apache2-utils)
#                                            for the push tests, docker-compose, Node.js +
#                                            npm and configurable-http-proxy (JupyterHub's
#                                            proxy)
#   bash .ci/setup-host.sh --print-packages [--tests|--emulation]   the Debian packages it would make
#                                            sure of, one a line; installs nothing
#
#  - installs the packages that are missing
#  - starts dockerd in the background (log: /var/log/dockerd.log) when the socket does not
#    answer, and waits up to 60 s for it
#  - installs the docker-buildx CLI plugin into ~/.docker/cli-plugins/ (optional; taken
#    from Debian trixie's docker-buildx package, fetched inside a debootstrapped trixie
#    image, so no container registry is needed; cached in /var/cache/pyrlab-ci/)
#  - with --emulation (or --tests): mounts binfmt_misc where it is not, and registers
#    qemu-user-static's handler for the other platform where installing it did not (no
#    systemd or binfmt-support service runs in a container); checks its flag F, without
#    which a container cannot reach the interpreter
#  - with --tests: gives Podman default ulimits (without them `podman run` fails setting
#    rlimits), opens /dev/net/tun to users as stock Debian does (rootless Podman's network;
#    test_podman_rootless.py makes its own user, whose subordinate IDs useradd gives),
#    starts apt-cacher-ng, and installs configurable-http-proxy from the npm
#    registry into /var/cache/pyrlab-ci/npm (Node.js and npm from Debian where the host
#    has no npm; a host's own Node.js, e.g. NodeSource's, is kept)
#
# Environment:
#   PYRLAB_CI_SKIP_BUILDX=1     do not try to install buildx
#   PYRLAB_CI_MIRROR=URL        Debian mirror for debootstrap (default: from apt sources)
#   PYRLAB_CI_TRIXIE_IMAGE=REF  trixie image used to fetch buildx
#                               (default pyrlab-probe/debian:trixie; bootstrapped if missing)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# pipx installs pyrlab for the user: PEP 668 forbids `pip install` into Debian's Python.
MAIN_PACKAGES=(docker.io mmdebstrap debootstrap pipx ca-certificates)
# Installed where the release has them: from Debian 13 on, docker.io only recommends its
# client (docker-cli), and a client >= 23 builds with BuildKit only through docker-buildx.
MAIN_WHERE_AVAILABLE=(docker-cli docker-buildx)
# Building for another platform runs its programs under qemu. On Debian 13 qemu-user-static
# is a transitional package that brings qemu-user (static there) and qemu-user-binfmt; on 12
# it is the static qemu and registers its handlers itself. binfmt-support's update-binfmts
# registers them where no systemd does.
EMULATION_PACKAGES=(qemu-user-static binfmt-support)
TEST_PACKAGES=(
  podman uidmap slirp4netns fuse-overlayfs
  # /usr/share/containers/storage.conf (driver = "overlay"): without it Debian 12's rootless
  # Podman stores images with vfs, a full copy of the image per build step.
  containers-storage
  shellcheck apt-cacher-ng r-base-core chromium
  python3-venv
  docker-compose
  # tests/integration/test_push.py starts its own registries on 127.0.0.1 (the package's
  # service, where it starts, does not matter to it).
  docker-registry apache2-utils
)

TESTS=0
PRINT=0
EMULATION=0  # 1: implied by --tests (a failure is a warning), 2: asked for (an error)
for arg in "$@"; do
  case $arg in
    --tests) TESTS=1; ((EMULATION)) || EMULATION=1 ;;
    --emulation) EMULATION=2 ;;
    --print-packages) PRINT=1 ;;
    *) printf 'setup-host: unknown option %s (see the top of %s)\n' "$arg" "$0" >&2; exit 2 ;;
  esac
done
PACKAGES=("${MAIN_PACKAGES[@]}")
if ((EMULATION)); then
  PACKAGES+=("${EMULATION_PACKAGES[@]}")
fi
if ((TESTS)); then
  PACKAGES+=("${TEST_PACKAGES[@]}")
fi
if ((PRINT)); then
  printf '%s\n' "${PACKAGES[@]}" "${MAIN_WHERE_AVAILABLE[@]}"
  exit 0
fi
CACHE_DIR=/var/cache/pyrlab-ci
BUILDX_CACHE="$CACHE_DIR/docker-buildx"
TRIXIE_IMAGE="${PYRLAB_CI_TRIXIE_IMAGE:-pyrlab-probe/debian:trixie}"
DOCKER_SOCK=/var/run/docker.sock
DOCKERD_LOG=/var/log/dockerd.log
CONTAINERS_CONF=/etc/containers/containers.conf
# JupyterHub's proxy for tests/integration/test_jupyterhub.py; 4.6 runs on Debian 12's
# Node.js 18 (5.x needs 20).
CHP_VERSION=4.6.3
NPM_PREFIX="$CACHE_DIR/npm"

log() { printf 'setup-host: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SUDO=()
if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null || die "run as root, or install sudo"
  SUDO=(sudo -n)
fi
as_root() { "${SUDO[@]}" "$@"; }

# --- packages -------------------------------------------------------------------------

# pgrep is in procps, which a minimal Debian lacks: then nothing is known to be running.
running() { command -v pgrep >/dev/null && pgrep "$@" >/dev/null; }

wait_for_apt() {
  local waited=0
  while running -x apt-get || running -x apt || running -x dpkg \
        || running -f unattended-upgrade; do
    ((waited % 30 == 0)) && log "waiting for another apt/dpkg run to finish..."
    sleep 2
    waited=$((waited + 2))
    ((waited < 1800)) || die "apt/dpkg still busy after 30 min"
  done
}

# Only a release that splits the client off lacks `docker` once docker.io is installed.
docker_cli_missing() { ! command -v docker >/dev/null || ! is_installed docker.io; }

is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

install_packages() {
  local missing=() optional=() p
  for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
  done
  for p in "${MAIN_WHERE_AVAILABLE[@]}"; do
    is_installed "$p" || optional+=("$p")
  done
  if ((${#missing[@]} == 0)) && ! { ((${#optional[@]})) && docker_cli_missing; }; then
    log "packages: all present"
    return
  fi
  wait_for_apt
  as_root apt-get -q -o DPkg::Lock::Timeout=600 update </dev/null
  for p in "${optional[@]}"; do
    if apt-cache show --no-all-versions "$p" >/dev/null 2>&1; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]})) || { log "packages: all present"; return; }
  log "installing: ${missing[*]}"
  as_root apt-get -q -y -o DPkg::Lock::Timeout=600 --no-install-recommends \
    install "${missing[@]}" </dev/null
}

# --- docker daemon --------------------------------------------------------------------

DOCKER=(docker)
docker_answers() { timeout 10 "${DOCKER[@]}" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start_dockerd() {
  if docker_answers; then
    log "dockerd: already answering on $DOCKER_SOCK"
    return
  fi
  if [[ $EUID -ne 0 ]] && [[ -S $DOCKER_SOCK ]] && ! [[ -w $DOCKER_SOCK ]]; then
    DOCKER=(sudo -n docker)
    if docker_answers; then return; fi
  fi
  if running -x dockerd; then
    log "dockerd: running but not answering yet; waiting"
  elif [[ -d /run/systemd/system ]]; then
    log "dockerd: starting with systemctl"
    as_root systemctl start docker
  else
    log "dockerd: starting in the background (log: $DOCKERD_LOG)"
    # setsid + nohup: the daemon outlives this script and any CI step that runs it.
    as_root sh -c "setsid nohup dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null &"
  fi
  local i
  for ((i = 0; i < 60; i++)); do
    if [[ -S $DOCKER_SOCK ]] && docker_answers; then
      log "dockerd: up after ${i}s"
      return
    fi
    sleep 1
  done
  tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
  die "dockerd did not answer on $DOCKER_SOCK within 60 s"
}

# --- podman ---------------------------------------------------------------------------

configure_podman() {
  if [[ -f $CONTAINERS_CONF ]] && grep -q '^[[:space:]]*default_ulimits' "$CONTAINERS_CONF"; then
    log "podman: $CONTAINERS_CONF already sets default_ulimits"
    return
  fi
  local ulimits='default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
  as_root mkdir -p "$(dirname "$CONTAINERS_CONF")"
  if [[ -f $CONTAINERS_CONF ]] && grep -q '^[[:space:]]*\[containers\]' "$CONTAINERS_CONF"; then
    as_root sed -i "/^[[:space:]]*\[containers\]/a $ulimits" "$CONTAINERS_CONF"
  else
    printf '\n[containers]\n%s\n' "$ulimits" | as_root tee -a "$CONTAINERS_CONF" >/dev/null
  fi
  log "podman: wrote default_ulimits to $CONTAINERS_CONF"
}

# Rootless Podman's network (slirp4netns) opens /dev/net/tun as the user: stock Debian's udev
# makes it 0666, some hosts (containers, hardened images) leave it 0600.
open_tun() {
  local tun=/dev/net/tun mode
  if [[ ! -c $tun ]]; then
    log "podman: no $tun: rootless Podman cannot publish ports here"
    return
  fi
  mode=$(stat -c %a "$tun")
  if [[ $mode != 666 ]]; then
    as_root chmod 0666 "$tun"
    log "podman: $tun was $mode, made 0666 as on stock Debian (rootless networks)"
  fi
}

# --- debian image from the mirror -----------------------------------------------------

debian_mirror() {
  if [[ -n ${PYRLAB_CI_MIRROR:-} ]]; then
    echo "$PYRLAB_CI_MIRROR"
    return
  fi
  local url=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    url=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $url ]] && [[ -f /etc/apt/sources.list ]]; then
    url=$(awk '/^deb / && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "${url:-http://deb.debian.org/debian}"
}

# bootstrap_image SUITE REF: debootstrap a minbase SUITE and import it into docker as REF.
bootstrap_image() {
  local suite=$1 ref=$2 dir mirror
  mirror=$(debian_mirror)
  dir=$(as_root mktemp -d /var/tmp/pyrlab-debootstrap.XXXXXX) || return 1
  log "debootstrap --variant=minbase $suite $dir $mirror"
  if as_root debootstrap --variant=minbase "$suite" "$dir" "$mirror" >/dev/null \
     && as_root tar -C "$dir" -c . | "${DOCKER[@]}" import - "$ref" >/dev/null; then
    as_root rm -rf "$dir"
    log "imported $ref"
  else
    as_root rm -rf "$dir"
    return 1
  fi
}

# --- buildx ---------------------------------------------------------------------------

buildx_works() { [[ -x $1 ]] && timeout 20 "$1" version >/dev/null 2>&1; }

fetch_buildx() {
  if ! "${DOCKER[@]}" image inspect "$TRIXIE_IMAGE" >/dev/null 2>&1; then
    bootstrap_image trixie "$TRIXIE_IMAGE" || return 1
  fi
  as_root mkdir -p "$CACHE_DIR" || return 1
  local out
  out=$(as_root mktemp -d "$CACHE_DIR/fetch.XXXXXX") || return 1
  log "fetching docker-buildx from Debian trixie (inside $TRIXIE_IMAGE)"
  # shellcheck disable=SC2016  # expanded inside the container
  if "${DOCKER[@]}" run --rm --network host -v "$out:/out" \
       -e http_proxy -e https_proxy -e HTTP_PROXY -e HTTPS_PROXY "$TRIXIE_IMAGE" \
       sh -ec 'cd /tmp
               apt-get -qq update
               apt-get -qq download docker-buildx
               dpkg-deb -x docker-buildx_*.deb x
               cp x/usr/libexec/docker/cli-plugins/docker-buildx /out/
               dpkg-deb -f docker-buildx_*.deb Version > /out/VERSION' </dev/null \
     && buildx_works "$out/docker-buildx"; then
    as_root mv -f "$out/docker-buildx" "$BUILDX_CACHE"
    as_root mv -f "$out/VERSION" "$BUILDX_CACHE.version"
    as_root rm -rf "$out"
  else
    as_root rm -rf "$out"
    return 1
  fi
}

install_buildx() {
  local dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  if timeout 20 "${DOCKER[@]}" buildx version >/dev/null 2>&1; then
    log "buildx: present ($("${DOCKER[@]}" buildx version 2>/dev/null))"
    return 0
  fi
  if buildx_works "$dir/docker-buildx"; then
    log "buildx: present in $dir"
    return 0
  fi
  if ! buildx_works "$BUILDX_CACHE"; then
    fetch_buildx || return 1
  fi
  mkdir -p "$dir" || return 1
  install -m 0755 "$BUILDX_CACHE" "$dir/docker-buildx" || return 1
  log "buildx: installed $("$dir/docker-buildx" version 2>/dev/null) into $dir"
}

# --- emulation ------------------------------------------------------------------------

BINFMT=/proc/sys/fs/binfmt_misc

# `uname -m` of the other platform pyrlab builds for (qemu's name, binfmt_misc's
# qemu-NAME): amd64 machines emulate arm64, arm64 machines amd64.
foreign_machine() {
  case $(uname -m) in
    x86_64) echo aarch64 ;;
    aarch64 | arm64) echo x86_64 ;;
  esac
}

# emulates NAME: qemu-NAME is registered, enabled, with flag F (the kernel opens the
# interpreter when it registers it, so containers without qemu inside can use it).
emulates() {
  local entry=$BINFMT/qemu-$1
  [[ -f $entry ]] && [[ $(head -n 1 "$entry") == enabled ]] && grep -q '^flags:.*F' "$entry"
}

mount_binfmt() {
  [[ -f $BINFMT/status ]] && return 0
  if ! as_root mount -t binfmt_misc binfmt_misc "$BINFMT"; then
    log "emulation: cannot mount binfmt_misc at $BINFMT (in a container: run it --privileged)"
    return 1
  fi
  log "emulation: mounted binfmt_misc at $BINFMT"
}

# Register qemu-NAME where installing qemu-user-static did not (binfmt_misc was not mounted,
# or no service registers at boot in a container): with update-binfmts, else from the
# package's systemd-binfmt file. A handler without F (another package's) is replaced.
register_emulation() {
  local machine=$1 conf=/usr/lib/binfmt.d/qemu-$1.conf
  if command -v update-binfmts >/dev/null; then
    as_root update-binfmts --enable "qemu-$machine" >/dev/null 2>&1 || true
  fi
  emulates "$machine" && return 0
  [[ -f $conf ]] || return 1
  if [[ -f $BINFMT/qemu-$machine ]]; then
    log "emulation: replacing $BINFMT/qemu-$machine ($(grep '^flags' "$BINFMT/qemu-$machine"))"
    echo -1 | as_root tee "$BINFMT/qemu-$machine" >/dev/null
  fi
  grep -v '^[#;]' "$conf" | as_root tee "$BINFMT/register" >/dev/null
}

setup_emulation() {
  local machine
  machine=$(foreign_machine)
  if [[ -z $machine ]]; then
    log "emulation: pyrlab builds no other platform on $(uname -m)"
    return 0
  fi
  if emulates "$machine"; then
    log "emulation: $BINFMT/qemu-$machine is registered ($(grep '^flags' "$BINFMT/qemu-$machine"))"
    return 0
  fi
  mount_binfmt || return 1
  register_emulation "$machine" || true
  if ! emulates "$machine"; then
    log "emulation: $BINFMT/qemu-$machine is missing, disabled or lacks flag F:"
    cat "$BINFMT/qemu-$machine" >&2 2>/dev/null || true
    return 1
  fi
  log "emulation: registered $BINFMT/qemu-$machine ($(grep '^flags' "$BINFMT/qemu-$machine"))"
}

# --- apt-cacher-ng --------------------------------------------------------------------

start_apt_cacher() {
  if (exec 3<>/dev/tcp/127.0.0.1/3142) 2>/dev/null; then
    return
  fi
  if [[ -d /run/systemd/system ]]; then
    as_root systemctl start apt-cacher-ng || log "apt-cacher-ng: could not start (ignored)"
  elif [[ -x /etc/init.d/apt-cacher-ng ]]; then
    as_root /etc/init.d/apt-cacher-ng start >/dev/null || log "apt-cacher-ng: could not start (ignored)"
  fi
}

# --- configurable-http-proxy -----------------------------------------------------------

install_chp() {
  local bin="$NPM_PREFIX/node_modules/.bin/configurable-http-proxy"
  if [[ -x $bin ]] && [[ "$(timeout 20 "$bin" --version 2>/dev/null)" == "$CHP_VERSION" ]]; then
    log "configurable-http-proxy: $CHP_VERSION present in $NPM_PREFIX"
    return
  fi
  if ! command -v npm >/dev/null; then
    wait_for_apt
    as_root apt-get -q -y -o DPkg::Lock::Timeout=600 --no-install-recommends \
      install nodejs npm </dev/null
  fi
  as_root mkdir -p "$NPM_PREFIX"
  log "configurable-http-proxy: npm install $CHP_VERSION into $NPM_PREFIX"
  as_root npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --loglevel=error \
    "configurable-http-proxy@$CHP_VERSION" </dev/null
}

# --------------------------------------------------------------------------------------

if ((EMULATION)); then
  # Mounted first, so that the packages' own scripts register their handlers.
  mount_binfmt || true
fi
install_packages
start_dockerd
if ((EMULATION)) && ! setup_emulation; then
  ((EMULATION == 1)) || die "no emulation of $(foreign_machine) here (see above)"
  log "warning: no emulation here: tests that build for another platform will fail"
fi
if ((TESTS)); then
  configure_podman
  open_tun
  start_apt_cacher
  install_chp || log "configurable-http-proxy: not installed (test_jupyterhub.py will say so)"
fi
if [[ ${PYRLAB_CI_SKIP_BUILDX:-0} == 1 ]]; then
  log "buildx: skipped (PYRLAB_CI_SKIP_BUILDX=1)"
elif ! install_buildx; then
  log "buildx: not installed (optional; Docker builds fall back to DOCKER_BUILDKIT=1 with a client < 23)"
fi
log "done"
