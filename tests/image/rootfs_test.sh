#!/usr/bin/env bash
# The image's final stage without a registry: debootstrap a Debian 12 minbase root with exactly
# the Dockerfile's runtime packages (its "# runtime-packages:" line, which its RUN installs),
# copy in the binaries its COPY names, and run each one's --version inside that root as the
# image's user (uid 65532). A library missing from the list makes a binary fail to start here.
#   tests/image/rootfs_test.sh DOCKERFILE BIN_DIR
set -euo pipefail
dockerfile=$1
bin_dir=$2
mirror=${FLOWSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# Exit 77: skipped (ctest shows it as such), with the reason.
if [[ ${EUID} -ne 0 ]] || ! command -v debootstrap >/dev/null; then
  echo "SKIP: needs root and debootstrap (scripts/setup installs it)"
  exit 77
fi
# (ldd's output is kept first: `ldd | grep -q` under pipefail fails when grep exits early.)
libs=$(ldd "${bin_dir}/flowscope-observer")
if grep -q -e libasan -e libtsan -e libubsan <<<"${libs}"; then
  echo "SKIP: sanitizer builds load runtimes the image does not ship (the plain build runs this)"
  exit 77
fi
packages=$(sed -n 's/^# runtime-packages: //p' "${dockerfile}")
[[ -n "${packages}" ]] || { echo "FAIL: no '# runtime-packages:' line in ${dockerfile}"; exit 1; }
# The RUN line installs the same list.
for p in ${packages}; do
  grep -q -- "[[:space:]]${p}[[:space:]\\]" <(sed -n '/^FROM debian:bookworm-slim/,$p' "${dockerfile}" | grep -v '^#') \
    || { echo "FAIL: ${p} is listed but not installed by the final stage's RUN"; exit 1; }
done
binaries=$(sed -n 's|^COPY --from=build \(.*\) /usr/bin/$|\1|p' "${dockerfile}")
[[ -n "${binaries}" ]] || { echo "FAIL: no COPY --from=build ... /usr/bin/ line"; exit 1; }

root=$(mktemp -d /tmp/flowscope-image-root.XXXXXX)
chmod 0755 "${root}"  # its /, readable by the image's user
cleanup() { rm -rf --one-file-system "${root}"; }
trap cleanup EXIT
echo "debootstrap: bookworm minbase + ${packages}"
debootstrap --variant=minbase --include="${packages// /,}" bookworm "${root}" "${mirror}" \
  > "${root}.log" 2>&1 || { tail -20 "${root}.log"; rm -f "${root}.log"; echo "FAIL: debootstrap"; exit 1; }
rm -f "${root}.log"
for b in ${binaries}; do
  name=$(basename "${b}")
  install -m 0755 "${bin_dir}/${name}" "${root}/usr/bin/${name}"
done
failed=0
for b in ${binaries}; do
  name=$(basename "${b}")
  if out=$(chroot --userspec=65532:65532 "${root}" "/usr/bin/${name}" --version 2>&1); then
    echo "ok: ${name} --version: ${out}"
  else
    echo "FAIL: ${name} --version in the image's root: ${out}"
    failed=1
  fi
done
exit "${failed}"
