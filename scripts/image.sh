#!/usr/bin/env bash
# Builds the container image from the Containerfile, as localhost/ittybit:VERSION
# and localhost/ittybit:latest, with podman (or buildah when podman is absent).
#
# online   a registry answers: the golang and debian:bookworm-slim images
#          are pulled and the binary is built in the build stage.
# offline  no registry: a Debian bookworm minbase is made with mmdebstrap from
#          the mirror apt uses here, imported once as BASE_IMAGE (kept: the
#          next build reuses it), and the binary is built on this machine.
#
# The runtime stage installs ffmpeg with apt-get in both cases, so the
# Debian mirror must be reachable either way.
#
# Environment: VERSION, COMMIT (as the Makefile's), GO (go), IMAGE
# (localhost/ittybit), BASE_IMAGE (localhost/ittybit-base:bookworm),
# IMAGE_PATH (online or offline, to skip the probe), IMAGE_TOOL (podman or
# buildah, to choose), IMAGE_BUILD_FLAGS (more flags for the build, e.g.
# --no-cache).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
IMAGE=${IMAGE:-localhost/ittybit}
BASE_IMAGE=${BASE_IMAGE:-localhost/ittybit-base:bookworm}
VERSION=${VERSION:-dev}
COMMIT=${COMMIT:-unknown}
BUILDER=docker.io/library/golang:1.26-bookworm
BASE=docker.io/library/debian:bookworm-slim
# A tag allows [A-Za-z0-9_.-], at most 128 characters.
TAG=$(printf '%s' "$VERSION" | tr -c 'A-Za-z0-9_.-' '-' | cut -c1-128)

if [ -n "${IMAGE_TOOL:-}" ]; then
	TOOL=$IMAGE_TOOL
elif command -v podman >/dev/null; then
	TOOL=podman
elif command -v buildah >/dev/null; then
	TOOL=buildah
else
	echo "image: neither podman nor buildah found (make image installs podman)" >&2
	exit 1
fi

have_image() {
	if [ "$TOOL" = podman ]; then
		podman image exists "$1"
	else
		buildah inspect --type image "$1" >/dev/null 2>&1
	fi
}

# registry_answers: a TCP connection to Docker Hub within 5 s, then both
# pulls (which also fail fast on a registry that refuses).
registry_answers() {
	timeout 5 bash -c 'exec 3<>/dev/tcp/registry-1.docker.io/443' 2>/dev/null || return 1
	timeout 600 "$TOOL" pull -q "$BUILDER" >/dev/null && timeout 600 "$TOOL" pull -q "$BASE" >/dev/null
}

# debian_sources prints the one-line sources of the bookworm suites apt
# uses on this machine, or deb.debian.org's.
debian_sources() {
	local lines
	lines=$(apt-get indextargets --format '$(TARGET_OF) $(REPO_URI) $(RELEASE) $(COMPONENT)' 2>/dev/null |
		awk '$1 == "deb" && $3 ~ /^bookworm(-updates|-security)?$/ { print "deb " $2 " " $3 " " $4 }' | sort -u) || true
	if [ -z "$lines" ]; then
		lines=$(printf '%s\n' "deb http://deb.debian.org/debian bookworm main" \
			"deb http://deb.debian.org/debian bookworm-updates main" \
			"deb http://deb.debian.org/debian-security bookworm-security main")
	fi
	printf '%s\n' "$lines"
}

make_base() {
	local tar=bin/image/base-bookworm.tar sources
	command -v mmdebstrap >/dev/null || { echo "image: mmdebstrap not found (make image installs it)" >&2; exit 1; }
	mkdir -p bin/image
	mapfile -t sources < <(debian_sources)
	echo "image: making $BASE_IMAGE with mmdebstrap from: ${sources[*]}"
	# Like debian:bookworm-slim: no manuals, docs (but copyrights) or locales,
	# here and in what the Containerfile installs later (dpkg keeps these).
	mmdebstrap --variant=minbase --quiet \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-include=/usr/share/locale/locale.alias' \
		--aptopt='Acquire::Languages "none"' \
		bookworm "$tar" "${sources[@]}"
	if [ "$TOOL" = podman ]; then
		podman import --quiet "$tar" "$BASE_IMAGE" >/dev/null
	else
		local ctr
		ctr=$(buildah from scratch)
		tar -C "$(buildah mount "$ctr")" -xf "$tar"
		buildah umount "$ctr" >/dev/null
		buildah commit --quiet "$ctr" "$BASE_IMAGE" >/dev/null
		buildah rm "$ctr" >/dev/null
	fi
	rm -f "$tar"
}

start=$(date +%s)
path=${IMAGE_PATH:-}
if [ -z "$path" ]; then
	if { have_image "$BUILDER" && have_image "$BASE"; } || registry_answers; then
		path=online
	else
		path=offline
	fi
fi

args=(--build-arg "VERSION=$VERSION" --build-arg "COMMIT=$COMMIT")
case $path in
online)
	echo "image: online: $BUILDER builds the binary, on $BASE"
	# Given, not left to the Containerfile's default: buildah 1.28 finds
	# the stage that FROM ${BINARY} names only from a --build-arg.
	args+=(--build-arg BINARY=build)
	;;
offline)
	if have_image "$BASE_IMAGE"; then
		echo "image: offline: no registry; reusing $BASE_IMAGE (remove it to remake it)"
	else
		echo "image: offline: no registry; making the base with mmdebstrap"
		make_base
	fi
	echo "image: offline: go build on this machine, on $BASE_IMAGE"
	mkdir -p bin/image
	CGO_ENABLED=0 "$GO" build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
		-o bin/image/ittybit ./cmd/ittybit
	args+=(--build-arg "BASE=$BASE_IMAGE" --build-arg BINARY=prebuilt)
	;;
*)
	echo "image: IMAGE_PATH is online or offline, not $path" >&2
	exit 2
	;;
esac

# chroot isolation: RUN needs no OCI runtime (crun cannot run on some hosts;
# see README); --format docker keeps HEALTHCHECK; --layers caches the apt
# step between builds.
# shellcheck disable=SC2086 # IMAGE_BUILD_FLAGS is a list of flags
"$TOOL" build --isolation chroot --format docker --layers \
	${IMAGE_BUILD_FLAGS:-} "${args[@]}" \
	-f Containerfile -t "$IMAGE:$TAG" -t "$IMAGE:latest" .

size=$("$TOOL" images --format '{{.Size}}' "$IMAGE:$TAG" 2>/dev/null | head -1)
echo "image: $IMAGE:$TAG and $IMAGE:latest, ${size:-size unknown}, $path path, $(($(date +%s) - start)) s"
