#!/bin/sh
# Rebuilds ../vendor/noble.js from the exact versions in package-lock.json, byte for byte.
#
#   cd channel-server/explorer/build && ./build.sh
#
# `npm ci` installs exactly what package-lock.json names (checked against its integrity
# hashes); esbuild (pinned there too) bundles entry.js into one ES module, unminified so it
# can be read and compared with the published packages. Nothing in the output depends on the
# time or the machine, so two runs give the same bytes: `git diff ../vendor` shows nothing
# after a rebuild. The explorer itself is served from ../ as plain files and needs no build.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts
# esbuild's binary comes in the pinned @esbuild/<platform> package; no install script needed.
./node_modules/.bin/esbuild entry.js \
  --bundle --format=esm --platform=browser --target=es2022 \
  --legal-comments=inline --charset=utf8 \
  --outfile=../vendor/noble.js
sha256sum ../vendor/noble.js
