# A stand-in for rust:1-slim-bookworm on a machine that reaches no container registry: Debian
# bookworm's rustc-web and cargo-web (Rust 1.9x, the newest Rust Debian 12 carries) and a C
# toolchain for linking, on the locally built minbase (ferrocanary local images). The project's
# Dockerfile.rust takes it as --build-arg RUST_IMAGE=<this image>.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
# Certificate authorities this machine trusts beyond Debian's, for cargo and pip inside the builds.
COPY ca-certificates/ /usr/local/share/ca-certificates/
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       rustc-web cargo-web gcc libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && rustc --version && cargo --version
ENV CARGO_HOME=/usr/local/cargo
CMD ["bash"]
