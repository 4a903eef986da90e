#!/bin/sh
# deps.sh - make sure the Debian packages tunic builds and tests with are installed.
# As root, installs what is missing with apt-get; otherwise prints the exact command.
set -e
PKGS="build-essential cmake pkg-config git libopenmpi-dev openmpi-bin libopenblas-openmp-dev libopenblas0-openmp \
libpcre2-dev libutf8proc-dev libcjson-dev libyaml-dev libcmocka-dev libcurl4-openssl-dev libsqlite3-dev libmicrohttpd-dev libgmp-dev chromium \
python3 python3-torch python3-numpy python3-protobuf python3-regex python3-jinja2 libgoogle-perftools4 nodejs npm gnuplot-nox \
clang-14 libclang-rt-14-dev libomp-14-dev llvm-14"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
# nodejs/npm may come from elsewhere than Debian (a newer node on PATH is fine)
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=$(echo "$missing" | sed -e 's/ nodejs//' -e 's/ npm//')
fi
[ -z "$(echo $missing)" ] && exit 0
echo "tunic: missing Debian packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
  echo "tunic: installed:$missing" >&2
else
  echo "tunic: please run:  sudo apt-get install$missing" >&2
  exit 1
fi
