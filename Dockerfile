# flowscope's image: flowscope-observer, flowscope-relay and the flowscope CLI on Debian 12.
# The Helm chart's default image.repository is built from this file:
#   docker build -t ghcr.io/flowscope/flowscope:0.1.0 .
# tests/image/rootfs_test.sh builds the final stage's filesystem without a registry (debootstrap
# with the packages listed below) and runs the three binaries in it.

# --- build -------------------------------------------------------------------------------------
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config clang llvm libbpf-dev bpftool libelf-dev \
      zlib1g-dev linux-libc-dev libgrpc++-dev libgrpc-dev protobuf-compiler \
      protobuf-compiler-grpc libprotobuf-dev libabsl-dev libre2-dev libboost1.81-dev \
      librocksdb-dev libssl-dev libcli11-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev \
      libfmt-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLOWSCOPE_BUILD_TESTS=OFF \
      -DFLOWSCOPE_BUILD_BENCH=OFF \
    && cmake --build /build --target flowscope flowscope-observer flowscope-relay

# --- runtime: the shared libraries the binaries load, nothing else ------------------------------
FROM debian:bookworm-slim
# runtime-packages: libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libbpf1 libelf1 libyaml-cpp0.7 libspdlog1.10 libfmt9 libre2-9 librocksdb7.8 libc-ares2 libssl3 zlib1g ca-certificates
RUN apt-get update && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libbpf1 libelf1 libyaml-cpp0.7 \
      libspdlog1.10 libfmt9 libre2-9 librocksdb7.8 libc-ares2 libssl3 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --no-create-home nonroot
COPY --from=build /build/cmd/flowscope /build/cmd/flowscope-observer /build/cmd/flowscope-relay /usr/bin/
# The relay and the CLI run as this user; the observer's DaemonSet runs it as root with the
# capabilities it needs (BPF, NET_ADMIN, PERFMON, SYS_RESOURCE).
USER 65532:65532
CMD ["/usr/bin/flowscope", "--help"]
