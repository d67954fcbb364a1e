# berth in a container, its engine's socket mounted (see compose.yaml and
# README.md, "berth in a container").
#
# No public registry is reachable here and a build container cannot fetch
# crates, so the image takes the binaries built on the host
# (`cargo build --release --bin berth`, and the static sandbox helper of
# scripts/sandbox-helper.sh) over a Debian base made locally from Debian's
# packages: python:3.11-slim, which scripts/provision.sh builds with
# mmdebstrap (Debian 12, the host's glibc). scripts/container.sh does all of
# it and runs the image.
FROM python:3.11-slim
COPY target/release/berth /usr/local/bin/berth
COPY target/x86_64-unknown-linux-gnu/helper/berth-sandboxd /usr/local/bin/berth-sandboxd
# The data on a volume; the helper beside the binary; the oci backend off:
# inside a container berth cannot make namespaces and cgroups of its own
# without privileges it should not be given (sealed runs go to the engine).
ENV BERTH_DATA=/var/lib/berth \
    BERTH_SANDBOX_HELPER=/usr/local/bin/berth-sandboxd \
    BERTH_OCI=off
VOLUME /var/lib/berth
ENTRYPOINT ["/usr/local/bin/berth"]
CMD ["serve"]
