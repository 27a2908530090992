// Package container tests the container image that `make image` builds
// (the Containerfile): its configuration, the ffmpeg inside it, and a
// cluster of three `ittybit server` containers and one `ittybit agent`
// container, started with podman, through the seed's video example. The
// tests run only with ITTYBIT_TEST_IMAGE=1 (`make test-image` sets it, after
// building the image) and skip where podman cannot run a container.
package container
