#!/bin/sh
# Installs the Debian packages wfengine needs to build and test, and only
# those that are missing. Without root it names what to install instead.
set -eu
# One package a line in tools/deps/*.txt (one file per area, so that areas
# add what they need without touching each other's lists).
cd "$(dirname "$0")/.."
need=$(cat tools/deps/*.txt | sed 's/#.*//' | tr -s ' \n' ' ')
missing=""
for p in $need; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "make deps: missing Debian packages:$missing" >&2
  echo "make deps: run 'sudo apt-get install$missing' (or make deps as root)" >&2
  exit 1
fi
echo "make deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
